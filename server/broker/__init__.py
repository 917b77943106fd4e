"""Pub/sub between nodes: in-process for one node, Redis for a cluster (DESIGN.md, "scaling out")."""

from __future__ import annotations

from server.broker.base import Broker, BrokerUnavailable, Handler, Subscription
from server.broker.memory import InMemoryBroker
from server.broker.redis import RedisBroker

__all__ = [
    "Broker",
    "BrokerUnavailable",
    "Handler",
    "InMemoryBroker",
    "RedisBroker",
    "Subscription",
    "make_broker",
]


def make_broker(redis_url: str | None) -> Broker:
    """The Redis broker when a URL is configured, else the in-process one."""
    if redis_url:
        return RedisBroker(redis_url)
    return InMemoryBroker()
