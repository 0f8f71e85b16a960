"""Prometheus metrics of ReprocessRequest replays (served by the operator with the monitor's).

The operator creates one :class:`ReprocessMetrics` in the registry it serves (see
:mod:`dlq_operator.metrics`); nothing is registered at import.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from dlq_operator.metrics import MetricSet


class ReprocessMetrics(MetricSet):
    """The replays' metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        labels = ("namespace", "request", "result")
        self.replayed = self.counter(
            "dlq_reprocess_records_total", "Records handled by ReprocessRequests.", *labels
        )
        self.running = self.gauge("dlq_reprocess_running", "ReprocessRequests replaying right now.")
