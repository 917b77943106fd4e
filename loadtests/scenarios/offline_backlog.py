"""Scenario 4, offline backlog: a device comes online to hundreds of waiting messages."""

from __future__ import annotations

import time

from locust import between, tag, task

from loadtests.core import Received
from loadtests.user import LienUser, report

RESULT = "Compte rendu d'analyses : NFS normale, CRP 4 mg/L, ferritine 35 µg/L."


class OfflineBacklog(LienUser):
    wait_time = between(1.0, 3.0)

    def on_start(self) -> None:
        self.lab = self.new_device("lab")
        self.laptop = self.new_device("dr")
        self.lab.connect()
        self.laptop.connect()
        self.introduce(self.lab, self.laptop)
        self.laptop.delivery_name = "offline backlog: waiting message"
        self.laptop.disconnect()

    @tag("offline-backlog")
    @task
    def come_online(self) -> None:
        size = int(self.option("backlog_size", 300))
        for _ in range(size):
            self.lab.send_text(self.laptop.username, RESULT)
        timeout = float(self.option("expect_timeout", 30.0))
        if not self.lab.wait_accepted(timeout):
            report("offline backlog: drained", timeout * 1000, error="sends not accepted")
            return
        started = time.monotonic()
        self.laptop.connect()
        for _ in range(size):
            if self.laptop.expect(lambda e: isinstance(e, Received), timeout) is None:
                report("offline backlog: drained", timeout * 1000, error="backlog incomplete")
                self.laptop.disconnect()
                return
        report("offline backlog: drained", (time.monotonic() - started) * 1000, length=size)
        self.laptop.disconnect()
