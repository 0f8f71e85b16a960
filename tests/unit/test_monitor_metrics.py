"""Per-DLQ gauges, read from the registry they are registered in."""

from prometheus_client import CollectorRegistry

from dlq_operator.monitor.alerts import AlertLevel
from dlq_operator.monitor.depth import DepthFigures
from dlq_operator.monitor.metrics import MonitorMetrics

METRICS = MonitorMetrics(CollectorRegistry())

FIGURES = DepthFigures(
    messages=25,
    pending=10,
    parked=4,
    unresolved=14,
    inflow_per_minute=1.5,
    oldest_unresolved_at=None,
    oldest_unresolved_age_seconds=90.0,
)


def sample(name: str, topic: str = "m.dlq") -> float | None:
    labels = {"namespace": "metrics-test", "name": "m", "topic": topic}
    return METRICS.registry.get_sample_value(name, labels)


def test_publish_sets_every_gauge() -> None:
    METRICS.publish_figures(
        "metrics-test", "m", "m.dlq", FIGURES, AlertLevel.CRITICAL, alerting=True
    )
    assert sample("dlq_message_count") == 25
    assert sample("dlq_pending") == 10
    assert sample("dlq_parked") == 4
    assert sample("dlq_unresolved") == 14
    assert sample("dlq_alert_level") == 2
    assert sample("dlq_alerting_enabled") == 1
    assert sample("dlq_oldest_unresolved_age_seconds") == 90.0
    METRICS.forget("metrics-test", "m")


def test_an_unknown_age_has_no_sample_rather_than_zero() -> None:
    METRICS.publish_figures("metrics-test", "m", "m.dlq", FIGURES, AlertLevel.OK, alerting=True)
    unknown = DepthFigures(**{**FIGURES.__dict__, "oldest_unresolved_age_seconds": None})
    METRICS.publish_figures("metrics-test", "m", "m.dlq", unknown, AlertLevel.OK, alerting=True)
    assert sample("dlq_oldest_unresolved_age_seconds") is None
    assert sample("dlq_unresolved") == 14
    METRICS.forget("metrics-test", "m")


def test_forget_and_topic_changes_leave_no_stale_series() -> None:
    METRICS.publish_figures(
        "metrics-test", "m", "m.dlq", FIGURES, AlertLevel.WARNING, alerting=True
    )
    METRICS.publish_figures(
        "metrics-test", "m", "renamed.dlq", FIGURES, AlertLevel.WARNING, alerting=True
    )
    assert sample("dlq_message_count") is None
    assert sample("dlq_message_count", "renamed.dlq") == 25
    METRICS.forget("metrics-test", "m")
    assert sample("dlq_message_count", "renamed.dlq") is None
    assert sample("dlq_alert_level", "renamed.dlq") is None
    assert sample("dlq_alerting_enabled", "renamed.dlq") is None
    METRICS.forget("metrics-test", "m")  # forgetting twice is harmless


def test_a_dlq_that_raises_no_alerts_says_so_and_keeps_its_figures() -> None:
    """Paused or spec.alerting.enabled false: 0, so alert rules can leave it out, while
    dashboards still see its figures."""
    METRICS.publish_figures("metrics-test", "m", "m.dlq", FIGURES, AlertLevel.OK, alerting=False)
    assert sample("dlq_alerting_enabled") == 0
    assert sample("dlq_unresolved") == 14
    METRICS.publish_figures(
        "metrics-test", "m", "m.dlq", FIGURES, AlertLevel.WARNING, alerting=True
    )
    assert sample("dlq_alerting_enabled") == 1
    METRICS.forget("metrics-test", "m")
    assert sample("dlq_alerting_enabled") is None
