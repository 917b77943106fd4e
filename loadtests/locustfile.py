"""Lien's Locust scenarios, each a user class (pick them by name, or by tag with ``--tags``).

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 [--nodes URL,URL] \
        [LabAlert CareTeam ReconnectStorm OfflineBacklog]

The user class wrapping the protocol core is loadtests/user.py; the
behaviour is in loadtests/scenarios/; ramps are in loadtests/shapes.py.
Every delivery is a Locust request whose response time is its end-to-end
latency (sender's clock before encrypting to recipient's after verifying).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Locust puts this file's folder on the path, not the repository's: the protocol core lives there.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests.scenarios.care_team import CareTeam
from loadtests.scenarios.lab_alert import LabAlert
from loadtests.scenarios.offline_backlog import OfflineBacklog
from loadtests.scenarios.reconnect_storm import ReconnectStorm

__all__ = ["CareTeam", "LabAlert", "OfflineBacklog", "ReconnectStorm"]
