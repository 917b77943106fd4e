"""Scenario 3, reconnect storm: every user's device drops at the same instant and comes back to a backlog."""

from __future__ import annotations

import time

import gevent
from locust import constant, tag, task

from loadtests.core import Received
from loadtests.user import LienUser, report

NOTE = "Résultats du bilan de contrôle disponibles, rien d'urgent."


class ReconnectStorm(LienUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        self.sender = self.new_device("lab")
        self.roamer = self.new_device("dr")
        self.sender.connect()
        self.roamer.connect()
        self.introduce(self.sender, self.roamer)
        self.roamer.delivery_name = "reconnect storm: backlog message"

    @tag("reconnect-storm")
    @task
    def storm(self) -> None:
        period = float(self.option("storm_period", 20.0))
        # Every user of this class wakes at the same wall-clock instant: that is the storm.
        gevent.sleep(period - time.time() % period)
        self.roamer.disconnect()
        burst = int(self.option("storm_burst", 20))
        for _ in range(burst):
            self.sender.send_text(self.roamer.username, NOTE)
        timeout = float(self.option("expect_timeout", 30.0))
        if not self.sender.wait_accepted(timeout):
            report("reconnect storm: backlog accepted", timeout * 1000, error="sends not accepted")
        started = time.monotonic()
        report("reconnect storm: reconnect until ready", self.roamer.connect() * 1000)
        for _ in range(burst):
            if self.roamer.expect(lambda e: isinstance(e, Received), timeout) is None:
                report("reconnect storm: backlog drained", timeout * 1000, error="backlog incomplete")
                return
        report("reconnect storm: backlog drained", (time.monotonic() - started) * 1000)
