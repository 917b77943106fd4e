"""desktop_client.single_instance: a second launch brings the first window forward and exits."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop_client.single_instance import SingleInstance
from tests.desktop import REPO

pytestmark = pytest.mark.skipif(not SingleInstance.supported(), reason="POSIX only")


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    # Unix socket paths are limited to ~100 bytes, more than pytest's tmp_path may take.
    with tempfile.TemporaryDirectory(prefix="lien-si-") as folder:
        yield Path(folder) / "lien-desktop"


def test_the_second_instance_signals_the_first_and_the_first_comes_forward(runtime_dir: Path) -> None:
    first, second = SingleInstance(runtime_dir), SingleInstance(runtime_dir)
    activated = threading.Event()
    assert first.acquire()
    try:
        first.listen(activated.set)
        assert not second.acquire()
        assert second.signal_primary(timeout=10)
        assert activated.wait(10)
        assert oct(runtime_dir.stat().st_mode & 0o777) == oct(0o700)
    finally:
        second.close()
        first.close()


def test_the_lock_is_free_again_once_the_first_instance_closes(runtime_dir: Path) -> None:
    first = SingleInstance(runtime_dir)
    assert first.acquire()
    first.listen(lambda: None)
    first.close()
    assert not (runtime_dir / "instance.sock").exists()
    again = SingleInstance(runtime_dir)
    try:
        assert again.acquire()
        again.listen(lambda: None)  # a socket file left behind by a crash would be replaced too
    finally:
        again.close()


def test_a_second_lien_desktop_process_exits_at_once_after_signalling(runtime_dir: Path) -> None:
    first = SingleInstance(runtime_dir)
    activated = threading.Event()
    assert first.acquire()
    try:
        first.listen(activated.set)
        env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir.parent), "DISPLAY": ""}
        second = subprocess.run(
            [sys.executable, "-m", "desktop_client", "--server", "http://127.0.0.1:9"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 0, second.stderr
        assert "déjà ouvert" in second.stderr
        assert activated.wait(10)
    finally:
        first.close()


def test_without_an_answer_the_second_instance_gives_up_in_bounded_time(runtime_dir: Path) -> None:
    first = SingleInstance(runtime_dir)
    assert first.acquire()  # holds the lock but never listens: a hung first instance
    try:
        assert not SingleInstance(runtime_dir).signal_primary(timeout=0.5)
    finally:
        first.close()
