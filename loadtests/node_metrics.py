"""Where a delivery's time goes inside Lien's nodes: their latency histograms over a measured window.

The driver measures a delivery from the sender's clock to the recipient's;
the nodes measure two stretches of it themselves (docs/operations.md):

* ``lien_accept_seconds``: a batch of a connection's sends, from the first
  send's arrival to the answers (fair-use check, store, ``accepted``);
* ``lien_delivery_latency_seconds``: from acceptance to the push on the
  recipient device's socket (broker, other node, socket writer).

``make bench`` reads every node's ``/metrics`` when a window starts and
when it stops, adds the nodes' buckets and estimates percentiles of the
difference the way Prometheus's ``histogram_quantile`` does (linear within a
bucket). What the driver measures beyond the two is the sockets' and the
load generator's queueing.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

STRETCHES = {
    "accept": "lien_accept_seconds",
    "push": "lien_delivery_latency_seconds",
}
"""Name in the report -> histogram each node exports."""

Buckets = dict[str, dict[float, float]]
"""Histogram name -> upper bound (seconds, ``inf`` last) -> cumulative count, summed over nodes."""


def parse(text: str) -> Buckets:
    """The cumulative buckets of the histograms in :data:`STRETCHES` from one node's ``/metrics``."""
    wanted = set(STRETCHES.values())
    found: Buckets = {name: {} for name in wanted}
    for family in text_string_to_metric_families(text):
        if family.name not in wanted:
            continue
        for sample in family.samples:
            if sample.name == family.name + "_bucket":
                bound = float(sample.labels["le"])
                found[family.name][bound] = found[family.name].get(bound, 0.0) + sample.value
    return found


def scrape(urls: list[str]) -> Buckets:
    """Every node's buckets, added (a node that does not answer counts as empty)."""
    total: Buckets = {name: {} for name in STRETCHES.values()}
    for url in urls:
        try:
            text = httpx.get(url.rstrip("/") + "/metrics", timeout=5).text
        except httpx.HTTPError:
            continue
        for name, buckets in parse(text).items():
            for bound, count in buckets.items():
                total[name][bound] = total[name].get(bound, 0.0) + count
    return total


def quantile(buckets: dict[float, float], fraction: float) -> float | None:
    """``histogram_quantile`` over cumulative ``buckets``: linear within the bucket it falls in."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = fraction * buckets[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound is all that is known
            inside = count - lower_count
            share = 0.0 if inside <= 0 else (rank - lower_count) / inside
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return None  # pragma: no cover - the last bucket holds every observation


def window(before: Buckets, after: Buckets) -> dict[str, Any]:
    """Per stretch: observations and estimated p50/p99 (ms) of what the nodes observed in between."""
    found: dict[str, Any] = {}
    for stretch, name in STRETCHES.items():
        earlier = before.get(name, {})
        delta = {bound: count - earlier.get(bound, 0.0) for bound, count in after.get(name, {}).items()}
        ordered = sorted(delta)
        found[stretch] = {
            "observations": int(delta[ordered[-1]]) if ordered else 0,
            **{
                point: None if value is None else round(value * 1000, 2)
                for point, value in (("p50_ms", quantile(delta, 0.5)), ("p99_ms", quantile(delta, 0.99)))
            },
        }
    return found
