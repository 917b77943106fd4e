"""Keeping one connection's sends in order across a fair-use refusal (docs/protocol.md §6.10).

A client writes its sends without waiting for the answers, so the sends it
wrote before hearing of a ``rate-limited`` refusal reach the node after it.
Were a token refilled meanwhile, one of them would be stored before the
refused ones, which the client sends again only after the delay. So after a
refusal the connection holds back every later send until the first refused
one comes back; a client that never sends it again is held back for
:data:`HOLD_LAPSE` seconds after the retry moment at most.
"""

from __future__ import annotations

from dataclasses import dataclass

HOLD_LAPSE = 10.0
"""Seconds after the retry moment when a hold ends even if the refused send never came back."""
MIN_RETRY_AFTER = 0.05
"""The smallest retry delay given to a send held back (never 0: that would invite a busy loop)."""


@dataclass(slots=True)
class RateHold:
    first_refused: str | None = None
    """Client id of the first send refused for rate; None when nothing is held back."""
    retry_at: float = 0.0
    lapses_at: float = 0.0

    def refused(self, client_id: str, retry_after: float, now: float) -> None:
        """Sends from ``client_id`` on were refused for rate; hold back what follows them."""
        self.first_refused = client_id
        self.retry_at = now + retry_after
        self.lapses_at = self.retry_at + HOLD_LAPSE

    def held_back(self, client_ids: list[str], now: float) -> tuple[int, float]:
        """How many of these sends, from the first, to refuse, and the retry delay to give them.

        The hold ends at the first refused send coming back (it and what follows
        are served as usual) or when it lapses.
        """
        if self.first_refused is None:
            return 0, 0.0
        if now >= self.lapses_at:
            self.first_refused = None
            return 0, 0.0
        try:
            count = client_ids.index(self.first_refused)
        except ValueError:
            count = len(client_ids)
        else:
            self.first_refused = None
        return count, max(MIN_RETRY_AFTER, self.retry_at - now)
