"""Prometheus metrics of the retry worker (served on its own port): :class:`WorkerMetrics`.

The worker process creates one in the registry it serves (see :mod:`dlq_operator.metrics`);
nothing is registered at import.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class WorkerMetrics:
    """One retry worker's metrics, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.retry_success = Counter(
            "dlq_retry_success_total",
            "Dead letters republished to their original topic.",
            ["original_topic"],
            registry=registry,
        )
        self.retry_failed = Counter(
            "dlq_retry_failed_total",
            "Republish attempts that failed (retried later or parked).",
            ["original_topic"],
            registry=registry,
        )
        self.parked = Counter(
            "dlq_parked_total",
            "Dead letters moved to the parked topic.",
            ["reason"],
            registry=registry,
        )
        self.max_retries_exceeded = Counter(
            "dlq_max_retries_exceeded_total",
            "Dead letters parked because retries ran out.",
            ["original_topic"],
            registry=registry,
        )
        self.scheduled = Gauge(
            "dlq_worker_scheduled_records",
            "Dead letters waiting for their backoff.",
            registry=registry,
        )
        self.schedule_lag = Gauge(
            "dlq_worker_schedule_lag_seconds",
            "How late the most overdue waiting retry is.",
            registry=registry,
        )
        self.in_flight = Gauge(
            "dlq_worker_in_flight_records",
            "Produces not yet acknowledged by the broker.",
            registry=registry,
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
