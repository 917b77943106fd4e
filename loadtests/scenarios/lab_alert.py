"""Scenario 1, lab alert: a biologist warns a prescriber of an abnormal result, who reads and answers."""

from __future__ import annotations

import time

from locust import between, tag, task

from loadtests.core import ReceiptArrived
from loadtests.user import LienUser, report

ALERT = "Résultat critique : kaliémie 6,8 mmol/L chez Mme Lefèvre (prélèvement de 7 h 40). Rappelez-moi."
ANSWER = "Bien reçu, je fais venir la patiente aux urgences et je vous rappelle."


class LabAlert(LienUser):
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.lab = self.new_device("lab")
        self.prescriber = self.new_device("dr")
        self.lab.delivery_name = "lab alert: answer to the biologist"
        self.prescriber.delivery_name = "lab alert: alert to the prescriber"
        self.lab.connect()
        self.prescriber.connect()

    @tag("lab-alert")
    @task
    def alert_read_and_answer(self) -> None:
        self.lab.send_text(self.prescriber.username, ALERT)
        alert = self.expect_message(self.prescriber, self.lab)
        if alert is None:
            return
        read_at = time.monotonic()
        self.prescriber.send_receipt(alert.message_id, "read")
        receipt = self.lab.expect(
            lambda e: isinstance(e, ReceiptArrived) and e.message_id == alert.message_id and e.kind == "read",
            float(self.option("expect_timeout", 30.0)),
        )
        elapsed_ms = (time.monotonic() - read_at) * 1000
        report(
            "lab alert: read receipt to the biologist", elapsed_ms, error=None if receipt else "no receipt"
        )
        self.prescriber.send_text(self.lab.username, ANSWER)
        self.expect_message(self.lab, self.prescriber)
