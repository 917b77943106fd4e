"""Live server nodes for tests: `python -m server serve` in a subprocess on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LiveNode:
    """One server process. Stopped only through its own pid."""

    def __init__(
        self,
        *,
        database_url: str,
        data_dir: Path,
        redis_url: str | None = None,
        name: str = "node",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.database_url = database_url
        self.redis_url = redis_url
        self.data_dir = data_dir
        self.name = name
        self.port = free_port()
        self.log_path = data_dir / f"{name}.log"
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 30.0) -> LiveNode:
        env = {
            **os.environ,
            "LIEN_HOST": "127.0.0.1",
            "LIEN_PORT": str(self.port),
            "LIEN_DATA_DIR": str(self.data_dir),
            "LIEN_DATABASE_URL": self.database_url,
            "LIEN_NODE_NAME": self.name,
            "LIEN_LOG_LEVEL": "info",
            **self.extra_env,
        }
        if self.redis_url:
            env["LIEN_REDIS_URL"] = self.redis_url
        else:
            env.pop("LIEN_REDIS_URL", None)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} did not become ready:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no goodbye, no drain."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def live_nodes(tmp_path: Path) -> Iterator[list[LiveNode]]:
    """A list the test appends started nodes to; every one is stopped afterwards."""
    nodes: list[LiveNode] = []
    yield nodes
    for node in nodes:
        node.stop()
