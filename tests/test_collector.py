"""A serving node's garbage collector: startup objects frozen, young objects collected less often."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from server import cli, collector
from server.settings import Settings
from tests.appclient import app_client


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_settling_freezes_what_exists_and_raises_only_the_young_threshold(restored_collector: None) -> None:
    _, middle, oldest = gc.get_threshold()
    made_before = [object()]  # a container the collector tracks
    assert gc.is_tracked(made_before)
    collector.settle_for_serving()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (collector.YOUNG_GENERATION_THRESHOLD, middle, oldest)
    assert all(made_before is not tracked for tracked in gc.get_objects())  # frozen: out of sight


def test_lien_serve_settles_the_collector_before_serving(
    restored_collector: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def run(app: object, **options: object) -> None:
        seen["frozen"] = gc.get_freeze_count()
        seen["threshold"] = gc.get_threshold()[0]

    monkeypatch.setattr(uvicorn, "run", run)
    gc.unfreeze()
    cli.serve(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'lien.db'}", data_dir=tmp_path))
    assert seen["frozen"] > 0
    assert seen["threshold"] == collector.YOUNG_GENERATION_THRESHOLD


def test_a_recorder_times_each_collection_while_installed_and_only_then() -> None:
    recorder = collector.PauseRecorder()
    recorder.install()
    try:
        gc.collect()
        pauses = recorder.drain()
        assert (2, pauses[-1][1]) == pauses[-1] and pauses[-1][1] >= 0
        assert recorder.drain() == []  # drained
    finally:
        recorder.remove()
    gc.collect()
    assert recorder.drain() == []
    recorder.remove()  # twice is harmless


def test_a_node_reports_its_collections_at_metrics(sqlite_database_url: str) -> None:
    with app_client(sqlite_database_url) as client:
        gc.collect()
        metrics = client.get("/metrics").text
    full = [
        line
        for line in metrics.splitlines()
        if line.startswith('lien_gc_pause_seconds_count{generation="2"}')
    ]
    assert full and float(full[0].split()[-1]) >= 1
    assert not any(callback.__qualname__.startswith("PauseRecorder") for callback in gc.callbacks)
