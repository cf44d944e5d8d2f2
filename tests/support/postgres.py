"""A throwaway PostgreSQL cluster for the test session, on loopback, from Debian's binaries."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.ports import free_port


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None
    )
    if not found:
        raise RuntimeError(
            f"PostgreSQL's {name} is missing; `make test` installs the postgresql package"
        )
    return found


class PostgresCluster:
    """A fresh cluster on loopback that can be stopped and started again on the same port and
    data directory, as an operator restarting the database would."""

    def __init__(self) -> None:
        self.initdb, self.pg_ctl = _binary("initdb"), _binary("pg_ctl")
        # PostgreSQL refuses to run as root; as root, run it as the postgres user the package
        # creates.
        self.as_user: list[str] = []
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.root = Path(tempfile.mkdtemp(prefix="wapi-pg-"))
        if owner:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.data, self.port = self.root / "data", free_port()
        self.log = self.root / "server.log"
        subprocess.run(
            [*self.as_user, self.initdb, "-D", str(self.data), "-U", "wapi",
             "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
        )  # fmt: skip

    @property
    def url(self) -> str:
        """The superuser URL (postgresql+asyncpg) of its `postgres` database."""
        return f"postgresql+asyncpg://wapi@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200"
        )
        self._pg_ctl("-l", str(self.log), "-o", options, "-w", "start", check=True)

    def stop(self, mode: str = "immediate", wait: bool = True) -> None:
        """`immediate`: the server drops every connection at once, as when it crashes.
        `smart`: it refuses new connections and waits for the open ones to close."""
        self._pg_ctl("-m", mode, "-w" if wait else "-W", "stop", check=False)

    @property
    def dsn(self) -> str:
        """The superuser URL for asyncpg itself."""
        return self.url.replace("+asyncpg", "")

    def running(self) -> bool:
        status = [*self.as_user, self.pg_ctl, "-D", str(self.data), "status"]
        return subprocess.run(status, capture_output=True).returncode == 0

    def start_if_stopped(self) -> None:
        if not self.running():
            self.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _pg_ctl(self, *arguments: str, check: bool) -> None:
        command = [*self.as_user, self.pg_ctl, "-D", str(self.data), *arguments]
        subprocess.run(command, check=check, capture_output=True)


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield the superuser URL of a fresh cluster (postgresql+asyncpg); remove it afterwards."""
    if url := os.environ.get("WAPI_TEST_POSTGRES_URL"):
        yield url
        return
    cluster = PostgresCluster()
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.remove()
