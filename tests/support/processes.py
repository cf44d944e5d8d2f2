"""Real processes for fault tests: a Temporal dev server on a SQLite file, and workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from config.settings import Settings
from tests.support.fixtures_temporal import TEMPORAL_BIN, dev_server_args
from tests.support.ports import free_port


def settings_env(settings: Settings) -> dict[str, str]:
    """The WAPI_* environment that reproduces `settings` in a child process."""
    env = {}
    for name, value in settings.model_dump(exclude_none=True).items():
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"WAPI_{name.upper()}"] = str(value)
    return env


class DevServer:
    """`temporal server start-dev` persisting to `db_file`; restartable on the same file."""

    def __init__(self, db_file: Path, log_file: Path, *, log_level: str = "warn") -> None:
        self.db_file = db_file
        self.log_file = log_file
        self.log_level = log_level
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [
            str(TEMPORAL_BIN), "server", "start-dev", "--headless",
            "--ip", "127.0.0.1", "--port", str(self.port),
            "--db-filename", str(self.db_file), "--log-level", self.log_level,
            *dev_server_args(),
        ]  # fmt: skip
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class WapiProcess:
    """`python -m cli <command>` with the test's settings, in a session of its own."""

    command = ""

    def __init__(self, settings: Settings, log_file: Path) -> None:
        self.settings = settings
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, **settings_env(self.settings)}
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli", self.command, *self.arguments()],
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )

    def arguments(self) -> list[str]:
        return []

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine dies."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


class WorkerProcess(WapiProcess):
    command = "worker"


class ApiProcess(WapiProcess):
    """The API on a port of its own."""

    command = "api"

    def __init__(self, settings: Settings, log_file: Path) -> None:
        super().__init__(settings.model_copy(update={"api_port": free_port()}), log_file)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"
