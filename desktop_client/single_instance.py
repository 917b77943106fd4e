"""One running window per user: a second `lien-desktop` brings the first forward and exits.

The first instance holds an exclusive ``flock`` on ``instance.lock`` in the runtime
folder for its whole life (the system drops it when the process ends, even on a
crash) and listens on the Unix socket ``instance.sock`` beside it. A later instance
fails to take the lock, connects to the socket, says ``activate`` and waits for
``ok``. The folder is private to the user (mode 0700), so only the user's own
processes can ask.

POSIX only (Linux, macOS): elsewhere every launch opens its own window.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

ACTIVATE = b"activate\n"
ACK = b"ok\n"
SIGNAL_TIMEOUT = 10.0
"""How long a second instance keeps trying to reach the first (which may still be starting)."""


class SingleInstance:
    """The lock and the socket of one runtime folder.

    ``acquire()`` says whether this process is the first. The first calls
    ``listen(on_activate)``; a later one calls ``signal_primary()`` and exits.
    """

    def __init__(self, runtime_dir: Path) -> None:
        self.runtime_dir = runtime_dir
        self.lock_path = runtime_dir / "instance.lock"
        self.socket_path = runtime_dir / "instance.sock"
        self._lock_fd: int | None = None
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()

    @staticmethod
    def supported() -> bool:
        return fcntl is not None and hasattr(socket, "AF_UNIX")

    def acquire(self) -> bool:
        """True when this is the first instance (it now holds the lock until `close`)."""
        self.runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def listen(self, on_activate: Callable[[], None]) -> None:
        """Accept ``activate`` requests on a daemon thread; each one calls ``on_activate``."""
        assert self._lock_fd is not None, "listen() is for the instance that holds the lock"
        self.socket_path.unlink(missing_ok=True)  # left by an instance that crashed
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.socket_path))
        os.chmod(self.socket_path, 0o600)
        server.listen(4)
        self._server = server
        self._thread = threading.Thread(
            target=self._serve, args=(server, on_activate), name="single-instance", daemon=True
        )
        self._thread.start()

    def _serve(self, server: socket.socket, on_activate: Callable[[], None]) -> None:
        while not self._closing.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                return  # closed
            with connection:
                connection.settimeout(2.0)
                try:
                    request = connection.recv(64)
                except OSError:
                    continue
                if request != ACTIVATE:
                    continue
                try:
                    on_activate()
                except Exception:
                    logger.exception("bringing the window forward failed")
                with contextlib.suppress(OSError):
                    connection.sendall(ACK)

    def signal_primary(self, timeout: float = SIGNAL_TIMEOUT) -> bool:
        """Ask the first instance to come forward; False if it did not answer in time."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                    client.settimeout(max(0.1, deadline - time.monotonic()))
                    client.connect(str(self.socket_path))
                    client.sendall(ACTIVATE)
                    return client.recv(16) == ACK
            except (FileNotFoundError, ConnectionRefusedError):
                pass  # the first instance holds the lock but does not listen yet
            except OSError as error:
                logger.warning("could not reach the running instance: %s", error)
                return False
            if time.monotonic() + delay > deadline:
                return False
            time.sleep(delay)  # bounded retry while the first instance starts
            delay = min(delay * 2, 0.5)

    def close(self) -> None:
        self._closing.set()
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None
            self.socket_path.unlink(missing_ok=True)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
