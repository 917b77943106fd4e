"""Prometheus metrics of one node (served at GET /metrics)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from server.collector import PauseRecorder

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connections = Gauge(
            "lien_connections", "Authenticated device sockets on this node", registry=self.registry
        )
        self.frames_in = Counter(
            "lien_frames_in", "Frames received, by type", ["type"], registry=self.registry
        )
        self.frames_out = Counter("lien_frames_out", "Frames sent, by type", ["type"], registry=self.registry)
        self.messages_accepted = Counter(
            "lien_messages_accepted", "Envelopes durably stored and answered accepted", registry=self.registry
        )
        self.messages_duplicate = Counter(
            "lien_messages_duplicate",
            "Resent envelopes recognised by their client message id",
            registry=self.registry,
        )
        self.messages_resent = Counter(
            "lien_messages_resent", "Copies sent again after a decrypt-failed receipt", registry=self.registry
        )
        self.messages_delivered = Counter(
            "lien_messages_delivered", "Message frames pushed to a device socket", registry=self.registry
        )
        self.receipts = Counter(
            "lien_receipts", "Receipts recorded, by kind", ["kind"], registry=self.registry
        )
        self.delivery_latency = Histogram(
            "lien_delivery_latency_seconds",
            "From acceptance to the push on the recipient device's socket",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600),
            registry=self.registry,
        )
        self.accept_seconds = Histogram(
            "lien_accept_seconds",
            "For each batch of a connection's sends: from its first send's arrival to the answers",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "lien_rate_limited", "Sends refused by an account's fair-use limit", registry=self.registry
        )
        self.errors = Counter(
            "lien_errors", "Errors answered to clients, by code", ["code"], registry=self.registry
        )
        self.commit_batch = Histogram(
            "lien_commit_batch_size",
            "Write jobs sharing one transaction",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.gc_pause = Histogram(
            "lien_gc_pause_seconds",
            "Garbage collections of this node's process by generation (2 = full): how long each stopped it",
            ["generation"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
            registry=self.registry,
        )
        self.gc_pauses = PauseRecorder()
        """Filled by the collector while the node runs (installed by its lifespan), read at each scrape."""
        self.broker_failures = Counter(
            "lien_broker_publish_failures",
            "Notices the broker could not take (the inbox still has them)",
            registry=self.registry,
        )

        self.frame_in = _children(self.frames_in)
        self.frame_out = _children(self.frames_out)
        self.error = _children(self.errors)

    def render(self) -> bytes:
        for generation, seconds in self.gc_pauses.drain():
            self.gc_pause.labels(str(generation)).observe(seconds)
        return generate_latest(self.registry)


def _children(counter: Counter) -> Callable[[str], Counter]:
    """``counter.labels(value)``, remembered: ``labels()`` takes a lock and builds a key at each call.

    For labels whose values come from a fixed set (frame types, error codes), counted per frame.
    """
    children: dict[str, Counter] = {}

    def child(value: str) -> Counter:
        found = children.get(value)
        if found is None:
            found = children[value] = counter.labels(value)
        return found

    return child
