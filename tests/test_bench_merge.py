"""loadtests.bench: several driver processes' results merged into one, phase by phase."""

from __future__ import annotations

from typing import Any

from loadtests.bench import _merge


def part(
    latencies: list[float],
    lags: list[float],
    *,
    deliveries: int,
    cpu: float,
    errors: dict[str, int],
    waited: float | None = None,
) -> dict:
    phase: dict[str, Any] = {
        "phase": "rate",
        "seconds": 10.0,
        "deliveries": deliveries,
        "deliveries_per_s": deliveries / 10,
        "messages_sent": deliveries,
        "messages_per_s": deliveries / 10,
        "latency_ms": {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0},
        "errors": errors,
        "undelivered_after_drain": 1,
        "raw_latencies_s": latencies,
        "raw_loop_lags_s": lags,
        "processes": {"load generator": {"cpu_s": cpu * 10, "cpu_share": cpu}},
    }
    if waited is not None:
        phase["processes"]["load generator"]["waited_share"] = waited
    return {"target": "lien", "setup_s": 5.0, "setup_errors": {}, "phases": [phase]}


def test_counts_add_up_and_percentiles_come_from_every_sample() -> None:
    fast = [0.001 * n for n in range(1, 101)]  # 1 .. 100 ms
    slow = [1.0 + 0.001 * n for n in range(1, 101)]  # 1,001 .. 1,100 ms
    merged = _merge(
        [
            part(fast, [0.0] * 10, deliveries=100, cpu=0.4, errors={"too-slow": 1}, waited=0.1),
            part(slow, [0.5] * 10, deliveries=100, cpu=0.3, errors={"too-slow": 2, "x": 1}, waited=0.3),
        ]
    )
    [phase] = merged["phases"]
    assert phase["deliveries"] == 200 and phase["deliveries_per_s"] == 20.0
    assert phase["errors"] == {"too-slow": 3, "x": 1}
    assert phase["undelivered_after_drain"] == 2
    # The median of both processes' samples lies between them, not in either one's own median.
    assert 100.0 <= phase["latency_ms"]["p50"] <= 1001.0
    assert phase["latency_ms"]["max"] == 1100.0
    assert phase["loop_lag_ms"]["p99"] == 500.0
    assert phase["processes"]["load generator"]["cpu_share"] == 0.7
    # Each process waited for a core part of the same window: the mean, not the sum.
    assert phase["processes"]["load generator"]["waited_share"] == 0.2
    assert "raw_latencies_s" not in phase


def test_no_waiting_share_when_a_process_did_not_say() -> None:
    merged = _merge(
        [
            part([0.001], [0.0], deliveries=1, cpu=0.1, errors={}, waited=0.1),
            part([0.001], [0.0], deliveries=1, cpu=0.1, errors={}),
        ]
    )
    assert "waited_share" not in merged["phases"][0]["processes"]["load generator"]
