"""loadtests.bench.Watcher: the figures of a window are there once the bench stops waiting for them."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from loadtests import bench
from loadtests.bench import Watcher


class SlowWatcher(Watcher):
    """Its ``stop`` ends only once released, as a real one ends after scraping and sampling."""

    def __init__(self) -> None:
        super().__init__({"bench": os.getpid()}, None)
        self.release = threading.Event()

    def stop(self, phase: str) -> None:
        assert self.release.wait(10)
        super().stop(phase)


def test_finish_waits_for_the_last_windows_stop() -> None:
    watcher = SlowWatcher()
    watcher.start("rate:2000")
    watcher.in_background("stop", "rate:2000")
    threading.Timer(0.2, watcher.release.set).start()
    watcher.finish()
    window = watcher.windows["rate:2000"]["bench"]
    assert window["cpu_s"] >= 0 and window["sockets"] >= 0 and window["peak_rss_mib"] > 0
    assert watcher.machine["rate:2000"]["steal_share"] >= 0.0
    assert window["waited_share"] >= 0.0


def test_the_profiler_records_only_the_phases_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The fixed-rate phases measure latency: py-spy's own CPU must not run beside them by default."""
    launched: list[list[str]] = []
    monkeypatch.setattr(bench.shutil, "which", lambda _name: "/usr/bin/py-spy")
    monkeypatch.setattr(bench.sys, "executable", str(tmp_path / "python"))  # no py-spy beside it
    monkeypatch.setattr(bench.subprocess, "Popen", lambda argv, **_kwargs: launched.append(argv))
    profile_phases = frozenset(bench.DEFAULT_PROFILE_PHASES.split(","))
    watcher = Watcher({}, None, profile=(os.getpid(), tmp_path, 5.0), profile_phases=profile_phases)
    for phase in ("pairs", "rate:250", "groups", "rate"):
        watcher.start(phase)
    assert sorted(watcher.profiles) == ["groups", "pairs"]
    assert [argv[argv.index("-o") + 1] for argv in launched] == [
        str(tmp_path / "profile-pairs.txt"),
        str(tmp_path / "profile-groups.txt"),
    ]
