"""loadtests.bench.Watcher: the figures of a window are there once the bench stops waiting for them."""

from __future__ import annotations

import os
import threading

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
