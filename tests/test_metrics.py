"""server.metrics: counters by label, their children remembered."""

from __future__ import annotations

from server.metrics import Metrics


def test_remembered_label_children_count_into_the_rendered_series() -> None:
    metrics = Metrics()
    metrics.frame_in("send").inc()
    metrics.frame_in("send").inc()
    metrics.frame_out("accepted").inc(3)
    metrics.error("rate-limited").inc()
    assert metrics.frame_in("send") is metrics.frame_in("send")
    rendered = metrics.render().decode()
    assert 'lien_frames_in_total{type="send"} 2.0' in rendered
    assert 'lien_frames_out_total{type="accepted"} 3.0' in rendered
    assert 'lien_errors_total{code="rate-limited"} 1.0' in rendered
    assert 'lien_frames_in_total{type="ack"}' not in rendered
