"""The garbage collector of a serving node: no pause of tens of milliseconds under load.

Measured at 2,000 messages/s (``make bench``, two nodes, CPython 3.11): with
the interpreter's defaults each node ran a full collection every 6 s or so,
80 to 120 ms long over some 130,000 objects, and every message in flight
waited for it; that was the whole of the p99 latency tail. Two settings:

* What the process built before it serves (modules, the application,
  SQLAlchemy's metadata: about 100,000 objects) lives until it exits.
  ``gc.freeze()`` takes it out of the collector's sight, so a full collection
  walks only what was made since (25,000 objects, 10 to 20 ms).
* The youngest generation is collected after 10,000 net allocations instead
  of 700. A node's objects (frames, futures, rows) nearly all die young, by
  reference counting, before a collection sees them, so far fewer reach the
  older generations: in the same run there was no full collection at all,
  and a young collection took 3 to 10 ms, a few times a minute.

Only ``lien serve`` applies this (and, so that their pauses are not counted
against either system, the benchmark's load generator and baseline relay),
never the test suite's in-process servers: frozen objects are never
collected.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import time
from typing import Any

YOUNG_GENERATION_THRESHOLD = 10_000
_PAUSES_KEPT = 10_000


def settle_for_serving() -> None:
    """Freeze what exists now and collect the youngest generation less often."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, oldest)


class PauseRecorder:
    """Times every collection of this process while installed: ``lien_gc_pause_seconds``.

    The collector calls back in the middle of whatever allocated, perhaps
    while that code holds a lock (a metric's, say); so the callback only
    appends to a bounded deque, and :meth:`drain` hands the pauses over later.
    """

    def __init__(self) -> None:
        self._pauses: collections.deque[tuple[int, float]] = collections.deque(maxlen=_PAUSES_KEPT)
        self._started = 0.0

    def install(self) -> None:
        gc.callbacks.append(self._callback)

    def remove(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._callback)

    def drain(self) -> list[tuple[int, float]]:
        """(generation, seconds) of each collection since the last drain, oldest first."""
        drained = []
        while self._pauses:
            drained.append(self._pauses.popleft())
        return drained

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._pauses.append((int(info["generation"]), time.perf_counter() - self._started))
