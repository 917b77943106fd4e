"""server.ws.rate_hold: after a fair-use refusal, later sends wait for the first refused one."""

from __future__ import annotations

from server.ws.rate_hold import HOLD_LAPSE, MIN_RETRY_AFTER, RateHold


def test_nothing_is_held_back_before_a_refusal() -> None:
    assert RateHold().held_back(["a", "b"], now=100.0) == (0, 0.0)


def test_later_sends_are_held_back_until_the_first_refused_one_comes_back() -> None:
    hold = RateHold()
    hold.refused("m4", retry_after=0.2, now=10.0)
    count, retry_after = hold.held_back(["m6"], now=10.05)
    assert count == 1 and abs(retry_after - 0.15) < 1e-9
    assert hold.held_back(["m6", "m7"], now=10.5) == (2, MIN_RETRY_AFTER)  # after the retry moment too
    # The refused send is back: what came before it in the batch is refused, it and the rest go on.
    assert hold.held_back(["m6", "m4", "m5", "m6"], now=10.6) == (1, MIN_RETRY_AFTER)
    assert hold.held_back(["m7"], now=10.7) == (0, 0.0)


def test_a_hold_lapses_when_the_refused_send_never_comes_back() -> None:
    hold = RateHold()
    hold.refused("m4", retry_after=1.0, now=0.0)
    assert hold.held_back(["m9"], now=1.0 + HOLD_LAPSE - 0.01)[0] == 1
    assert hold.held_back(["m9"], now=1.0 + HOLD_LAPSE) == (0, 0.0)
