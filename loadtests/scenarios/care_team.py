"""Scenario 2, care-team group chat: a home-care team of 8 to 12 professionals talks about a patient."""

from __future__ import annotations

import random

from locust import between, tag, task

from loadtests.core import Received
from loadtests.user import LienUser, report

ROLES = ["gp", "ide", "ide", "ide", "pharma", "kine", "ide", "aide", "gp", "psy", "diet", "ortho"]
NOTES = [
    "Passage de 8 h : TA 13/8, glycémie 1,45 g/L, pansement refait.",
    "Renouvellement d'ordonnance prêt à la pharmacie.",
    "Séance de kiné faite, marche avec déambulateur sur 20 m.",
    "Douleur 6/10 cette nuit, merci de réévaluer le traitement.",
]


class CareTeam(LienUser):
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        low, _, high = str(self.option("team_size", "8-12")).partition("-")
        size = random.randint(int(low), int(high or low))
        self.team = [self.new_device(ROLES[n % len(ROLES)]) for n in range(size)]
        for device in self.team:
            device.connect()
        for index, first in enumerate(self.team):
            for second in self.team[index + 1 :]:
                self.introduce(first, second)
        owner = self.team[0]
        group = owner.create_group("Mme Lefèvre, soins à domicile", [d.username for d in self.team[1:]])
        devices = {d.username: [d.core.device_id] for d in self.team}
        for device in self.team:
            device.core.join_group(group, devices)
            device.delivery_name = "care team: group message"
        self.group_id = group.id

    @tag("care-team")
    @task
    def post(self) -> None:
        author = random.choice(self.team)
        client_id = author.send_group_text(self.group_id, random.choice(NOTES))
        timeout = float(self.option("expect_timeout", 30.0))
        for member in self.team:
            if member is author:
                continue
            found = member.expect(lambda e: isinstance(e, Received) and e.client_id == client_id, timeout)
            if found is None:
                report(member.delivery_name, timeout * 1000, error="group message not delivered")
