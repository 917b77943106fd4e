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

import gc

YOUNG_GENERATION_THRESHOLD = 10_000


def settle_for_serving() -> None:
    """Freeze what exists now and collect the youngest generation less often."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, oldest)
