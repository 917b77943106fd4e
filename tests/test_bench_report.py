"""The bench report's own arithmetic: node histograms over a window, latency against offered rate."""

from __future__ import annotations

import math
import os
from typing import Any

import pytest

from loadtests import node_metrics, procstat, report
from server.metrics import Metrics


def rendered(metrics: Metrics) -> str:
    text = metrics.render()
    return text.decode() if isinstance(text, bytes) else text


def test_quantiles_interpolate_within_a_bucket_like_prometheus() -> None:
    buckets = {0.01: 0.0, 0.025: 50.0, 0.05: 100.0, math.inf: 100.0}
    assert node_metrics.quantile(buckets, 0.5) == pytest.approx(0.025)
    assert node_metrics.quantile(buckets, 0.99) == pytest.approx(0.025 + 0.025 * 49 / 50)
    assert node_metrics.quantile({0.01: 0.0, math.inf: 0.0}, 0.5) is None


def test_observations_past_the_last_bucket_report_its_bound() -> None:
    assert node_metrics.quantile({0.01: 1.0, 10.0: 1.0, math.inf: 4.0}, 0.99) == 10.0


def test_a_window_counts_only_what_the_nodes_observed_in_it() -> None:
    first, second = Metrics(), Metrics()
    first.accept_seconds.observe(0.004)  # before the window: not counted
    before = node_metrics.parse(rendered(first))
    for _ in range(98):
        first.accept_seconds.observe(0.002)
    second.accept_seconds.observe(0.3)
    second.accept_seconds.observe(0.3)
    second.delivery_latency.observe(0.02)
    after = node_metrics.parse(rendered(first))
    for name, buckets in node_metrics.parse(rendered(second)).items():  # two nodes, added up
        for bound, count in buckets.items():
            after[name][bound] += count

    measured = node_metrics.window(before, after)

    assert measured["accept"]["observations"] == 100
    assert 1.0 <= measured["accept"]["p50_ms"] <= 2.5  # the 0.001-0.0025 bucket
    assert measured["accept"]["p99_ms"] == pytest.approx(375.0)  # halfway into the slow batches' bucket
    assert measured["push"] == {
        "observations": 1,
        "p50_ms": pytest.approx(17.5),
        "p99_ms": pytest.approx(24.85),
    }


def row(phase: str, p99: float, *, errors: int = 0, machine_busy: float | None = None) -> dict[str, Any]:
    return {
        "phase": phase,
        "deliveries_per_s": 100.0,
        "p50_ms": p99 / 2,
        "p99_ms": p99,
        "errors": errors,
        "machine_busy": machine_busy,
    }


def test_the_rate_sweep_names_the_highest_rate_each_system_kept_in_bound() -> None:
    settings = {"rate": 2000.0}
    metrics = {
        "lien": {
            "pairs": row("pairs", 9.0),
            "rate:250": row("rate:250", 12.0),
            "rate:500": row("rate:500", 40.0, errors=1),
            "rate:1000": row("rate:1000", 48.0),
            "rate": row("rate", 700.0, machine_busy=0.964),
        },
        "baseline": {name: row(name, 3.0) for name in ("rate:250", "rate:500", "rate:1000", "rate")},
    }

    lines = report.rate_sweep_markdown(metrics, settings)

    offered = [line.split("|")[1].strip() for line in lines if line.startswith("| ") and line[2].isdigit()]
    assert offered == ["250", "500", "1,000", "2,000"]
    assert lines[-2].startswith(
        "Highest offered rate of this run with p99 ≤ 50 ms and no error: Lien 1,000/s, baseline 2,000/s."
    )
    at_2000 = next(line for line in lines if line.startswith("| 2,000 "))
    assert at_2000.split("|")[5].strip() == "96 %"  # Lien's machine busy
    assert at_2000.split("|")[9].strip() == "-"  # the baseline's phase measured none
    assert report.rate_sweep_markdown({"lien": {"rate": row("rate", 1.0)}}, settings) == []


def test_the_capacity_report_says_whether_clients_offered_compression() -> None:
    context = {
        "started": "2026-12-07 07:00 UTC",
        "command": "make bench-capacity",
        "commit": "abc1234",
        "elapsed_s": 300,
        "cores": 2,
        "cpu": "AMD EPYC",
        "nofile": 20000,
        "load_before": [0.1, 0.2, 0.3],
    }
    result: dict[str, Any] = {
        "devices": 19000,
        "client_processes": 2,
        "authenticated": 19000,
        "failures": 0,
        "failure_reasons": {},
        "compression_offered": "deflate",
        "compressed_sockets": 0,
        "connections_held": 19000,
        "rss_before_mib": 90.0,
        "rss_after_mib": 530.0,
        "peak_rss_mib": 531.0,
        "kib_per_connection": 23.7,
        "connect_s": 60.0,
        "connect_cpu_s": 50.0,
        "idle_s": 30.0,
        "idle_cpu_share": 0.1,
    }
    page = report.capacity_markdown(context, result)
    assert "| permessage-deflate: offered (as browsers do); sockets compressed | 0 |" in page
    assert "**met**" in page

    result["compression_offered"], result["compressed_sockets"] = "none", 0
    assert "permessage-deflate: not offered" in report.capacity_markdown(context, result)
    del result["compression_offered"], result["compressed_sockets"]  # a report from before the option
    assert "permessage-deflate" not in report.capacity_markdown(context, result)


PROC_STAT = """cpu  1000 20 300 5000 80 5 95 100 0 0
cpu0 500 10 150 2500 40 3 47 50 0 0
cpu1 500 10 150 2500 40 2 48 50 0 0
intr 123
"""


def test_the_machine_window_is_a_share_of_every_core_with_steal_apart() -> None:
    ticks = procstat._TICKS
    before = procstat.machine(PROC_STAT)
    assert before.cores == 2
    assert before.busy_s == pytest.approx((1000 + 20 + 300 + 5 + 95) / ticks)
    # Over the window: 300 ticks busy, 60 stolen, 240 idle or waiting, of 600 in all (two cores).
    after = procstat.machine(
        "cpu  1200 20 380 5200 120 5 115 160 0 0\ncpu0 1 0 0 0 0 0 0 0 0 0\ncpu1 1 0 0 0 0 0 0 0 0 0\n"
    )
    assert procstat.machine_window(before, after) == {"busy_share": 0.5, "steal_share": 0.1, "cores": 2}


def test_the_machine_is_read_from_proc_stat() -> None:
    first = procstat.machine()
    assert first.cores == os.cpu_count()
    assert first.busy_s > 0 and first.idle_s >= 0 and first.steal_s >= 0
    window = procstat.machine_window(first, procstat.machine())
    assert 0.0 <= window["busy_share"] <= 1.0 and 0.0 <= window["steal_share"] <= 1.0
