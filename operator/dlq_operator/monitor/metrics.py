"""Prometheus metrics of the depth monitor, all in one place: :class:`MonitorMetrics`.

Per-DLQ gauges carry the labels ``namespace``, ``name`` and ``topic`` (the DLQ topic).
``dlq_message_count`` keeps the meaning of the original design's ``dlq.message_count``:
records retained on the DLQ topic. A gauge that has no value for a DLQ (the age of the
oldest unresolved record when nothing is unresolved or it is unknown) has no sample at
all, rather than a misleading zero.

``dlq_alerting_enabled`` is 1 while the operator raises alerts for a DLQ and 0 while it
does not: ``spec.alerting.enabled`` is false, or the DLQ is paused (the annotation
``dlq.orion.io/paused: "true"``). The figures of such a DLQ are still measured and
published, so dashboards keep showing it; alert rules written on the figures join this
gauge to stay as quiet as the operator's own notifications (the chart's PrometheusRule
does: ``unless on (namespace, name, topic) (dlq_alerting_enabled == 0)``, so a DLQ
without the gauge still alerts).

The operator creates one :class:`MonitorMetrics` in the registry it serves (see
:mod:`dlq_operator.metrics`); nothing is registered at import.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge

from dlq_operator.metrics import MetricSet
from dlq_operator.monitor.alerts import AlertLevel
from dlq_operator.monitor.depth import DepthFigures

_LABELS = ("namespace", "name", "topic")


@dataclass
class _Series:
    """One DLQ's gauge children, looked up once rather than every cycle."""

    topic: str
    figures: tuple[Gauge, ...]  # messages, pending, parked, unresolved, level, alerting
    oldest_age: Gauge | None = None  # while the DLQ has an oldest unresolved record


class MonitorMetrics(MetricSet):
    """The depth monitor's metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)

        def per_dlq(name: str, documentation: str) -> Gauge:
            return self.gauge(name, documentation, *_LABELS)

        self.message_count = per_dlq("dlq_message_count", "Records retained on the DLQ topic.")
        self.pending = per_dlq("dlq_pending", "DLQ records the retry worker has not handled yet.")
        self.parked = per_dlq("dlq_parked", "Parked records nobody has reprocessed or purged.")
        self.unresolved = per_dlq("dlq_unresolved", "Records that still need the worker or people.")
        self.alert_level = per_dlq("dlq_alert_level", "Alert level: 0 OK, 1 warning, 2 critical.")
        self.alerting_enabled = per_dlq(
            "dlq_alerting_enabled",
            "1 while the DLQ raises alerts; 0 when spec.alerting.enabled is false or it is paused.",
        )
        self.oldest_unresolved_age = per_dlq(
            "dlq_oldest_unresolved_age_seconds", "Age of the oldest unresolved record."
        )
        self.check_duration = self.histogram(
            "dlq_check_duration_seconds", "Duration of one monitor cycle over all DLQs."
        )
        self.check_errors = self.counter(
            "dlq_check_errors_total", "Monitor cycles that could not query Kafka."
        )
        self.sink_failures = self.counter(
            "dlq_alert_sink_failures_total", "Notifications an alert sink did not accept.", "sink"
        )
        self.notifications = self.counter(
            "dlq_alert_notifications_total",
            "Notifications delivered to an alert sink.",
            "sink",
            "kind",
        )
        self._per_dlq = (
            self.message_count,
            self.pending,
            self.parked,
            self.unresolved,
            self.alert_level,
            self.alerting_enabled,
            self.oldest_unresolved_age,
        )
        # Per DLQ, so a changed topic or a deleted DLQ leaves no stale series behind.
        self._series: dict[tuple[str, str], _Series] = {}

    def publish_figures(
        self,
        namespace: str,
        name: str,
        topic: str,
        figures: DepthFigures,
        level: AlertLevel,
        *,
        alerting: bool,
    ) -> None:
        """A DLQ's figures and alert level; ``alerting``: whether the DLQ raises alerts."""
        series = self._series.get((namespace, name))
        if series is None or series.topic != topic:
            self.forget(namespace, name)
            labels = (namespace, name, topic)
            series = _Series(topic, tuple(gauge.labels(*labels) for gauge in self._per_dlq[:6]))
            self._series[namespace, name] = series
        messages, pending, parked, unresolved, alert_level, alerting_enabled = series.figures
        messages.set(figures.messages)
        pending.set(figures.pending)
        parked.set(figures.parked)
        unresolved.set(figures.unresolved)
        alert_level.set(int(level))
        alerting_enabled.set(1 if alerting else 0)
        age = figures.oldest_unresolved_age_seconds
        if age is not None:
            if series.oldest_age is None:
                series.oldest_age = self.oldest_unresolved_age.labels(namespace, name, topic)
            series.oldest_age.set(age)
        elif series.oldest_age is not None:
            _remove(self.oldest_unresolved_age, namespace, name, topic)
            series.oldest_age = None

    def publish_oldest_age(self, namespace: str, name: str, age: float) -> None:
        """The age of a DLQ's oldest unresolved record, between checks that publish figures."""
        series = self._series.get((namespace, name))
        if series is not None and series.oldest_age is not None:
            series.oldest_age.set(age)

    def forget(self, namespace: str, name: str) -> None:
        """Drop every series of a DLQ, e.g. once its resource is deleted."""
        series = self._series.pop((namespace, name), None)
        if series is None:
            return
        for gauge in self._per_dlq:
            _remove(gauge, namespace, name, series.topic)


def _remove(gauge: Gauge, *labels: str) -> None:
    with suppress(KeyError):
        gauge.remove(*labels)
