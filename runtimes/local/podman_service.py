"""A `podman system service` of our own: the Docker Engine API on a socket the project owns.

Podman is pointed at `deploy/local/containers.conf` through `CONTAINERS_CONF` (runc as the
OCI runtime, ulimits containers may have), so nothing under /etc is changed. Used by
`wapi run` when no Docker host is configured, and by the test suite.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from runtimes.errors import RuntimeUnavailableError

CONTAINERS_CONF = Path(__file__).resolve().parents[2] / "deploy" / "local" / "containers.conf"
# sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_SOCKET_PATH = 107


def answers(socket_path: Path, timeout: float = 2.0) -> bool:
    """Whether a Docker-API server answers `GET /_ping` on the socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = sock.recv(1024)
    except OSError:
        return False
    return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0]


def podman_environment(conf: Path = CONTAINERS_CONF) -> dict[str, str]:
    """The environment for any podman command of the project (CLI or service)."""
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


class PodmanService:
    """Start and stop `podman system service` on `socket_path`.

    Args:
        socket_path: The Unix socket to serve on (at most 107 bytes long).
        conf: The containers.conf to use; defaults to the project's.
        podman: The podman executable.
    """

    def __init__(
        self, socket_path: Path, *, conf: Path = CONTAINERS_CONF, podman: str = "podman"
    ) -> None:
        self.socket_path = socket_path.resolve()
        self.log_path = self.socket_path.with_suffix(".log")
        self._conf, self._podman = conf, podman
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 30.0) -> str:
        """Start the service and wait until its API answers; return the Docker URL."""
        executable = shutil.which(self._podman)
        if executable is None:
            raise RuntimeUnavailableError(
                f"'{self._podman}' is not installed; install podman and runc "
                "(`apt-get install podman runc`; `make run` and `make test` do it)"
            )
        if not self._conf.is_file():
            raise RuntimeUnavailableError(f"podman configuration {self._conf} is missing")
        if len(str(self.socket_path)) > _MAX_SOCKET_PATH:
            raise RuntimeUnavailableError(
                f"socket path too long for Unix sockets: {self.socket_path}"
            )
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)  # a stale socket of a service that died
        command = [executable, "--runtime", "runc", "system", "service", "--time=0", self.url]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                env=podman_environment(self._conf),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # Ctrl-C in a terminal goes to us; we stop it in order
            )
        deadline = time.monotonic() + timeout
        while not answers(self.socket_path, timeout=1.0):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeUnavailableError(
                    f"podman system service did not start on {self.socket_path}: {self._log_tail()}"
                )
            time.sleep(0.05)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the service (containers keep running: conmon supervises them)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.socket_path.unlink(missing_ok=True)

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return " | ".join(lines[-5:]) or "no output"

    def __enter__(self) -> PodmanService:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


@contextmanager
def docker_endpoint(docker_host: str | None, state_dir: Path) -> Iterator[str]:
    """The Docker URL to use: `docker_host` if given, else a Podman service of our own.

    Args:
        docker_host: An explicit engine URL (settings or environment); it always wins.
        state_dir: Where our Podman service puts its socket and log.

    Yields:
        A URL for `LocalRuntime`, valid until the context exits.
    """
    if docker_host:
        yield docker_host
        return
    with PodmanService(state_dir / "podman" / "docker.sock") as service:
        yield service.url
