"""Load shapes: ramps only. Add to a run with ``-f loadtests/locustfile.py,loadtests/shapes.py``."""

from __future__ import annotations

from locust import LoadTestShape


class StepRamp(LoadTestShape):
    """Add ``step_users`` users every ``step_seconds`` up to ``max_users``, hold, then stop."""

    step_users = 10
    step_seconds = 30
    max_users = 100
    hold_seconds = 120

    def tick(self) -> tuple[int, float] | None:
        elapsed = self.get_run_time()
        ramp_seconds = self.step_seconds * self.max_users / self.step_users
        if elapsed > ramp_seconds + self.hold_seconds:
            return None
        users = min(self.max_users, self.step_users * (int(elapsed // self.step_seconds) + 1))
        return users, float(self.step_users)
