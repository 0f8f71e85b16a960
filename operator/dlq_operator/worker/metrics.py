"""Prometheus metrics of the retry worker (served on its own port): :class:`WorkerMetrics`.

The worker process creates one in the registry it serves (see :mod:`dlq_operator.metrics`);
nothing is registered at import.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from dlq_operator.metrics import MetricSet

_TOPIC = "original_topic"


class WorkerMetrics(MetricSet):
    """One retry worker's metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.retry_success = self.counter(
            "dlq_retry_success_total", "Dead letters republished to their original topic.", _TOPIC
        )
        self.retry_failed = self.counter(
            "dlq_retry_failed_total",
            "Republish attempts that failed (retried later or parked).",
            _TOPIC,
        )
        self.parked = self.counter(
            "dlq_parked_total", "Dead letters moved to the parked topic.", "reason"
        )
        self.max_retries_exceeded = self.counter(
            "dlq_max_retries_exceeded_total", "Dead letters parked because retries ran out.", _TOPIC
        )
        self.scheduled = self.gauge(
            "dlq_worker_scheduled_records", "Dead letters waiting for their backoff."
        )
        self.schedule_lag = self.gauge(
            "dlq_worker_schedule_lag_seconds", "How late the most overdue waiting retry is."
        )
        self.in_flight = self.gauge(
            "dlq_worker_in_flight_records", "Produces not yet acknowledged by the broker."
        )
        self._successes: dict[str | None, Counter] = {}

    def retry_succeeded(self, original_topic: str | None) -> None:
        """Counts one republished dead letter. The counter's child for a topic is looked up
        once (labels() costs a lock and a hash per call, noticeable at thousands of records
        per second)."""
        child = self._successes.get(original_topic)
        if child is None:
            child = self._successes[original_topic] = self.retry_success.labels(original_topic)
        child.inc()
