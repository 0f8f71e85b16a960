"""Prometheus metrics of ReprocessRequest replays (served by the operator with the monitor's).

The operator creates one :class:`ReprocessMetrics` in the registry it serves (see
:mod:`dlq_operator.metrics`); nothing is registered at import.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class ReprocessMetrics:
    """The replays' metrics, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.replayed = Counter(
            "dlq_reprocess_records_total",
            "Records handled by ReprocessRequests.",
            ["namespace", "request", "result"],
            registry=registry,
        )
        self.running = Gauge(
            "dlq_reprocess_running", "ReprocessRequests replaying right now.", registry=registry
        )
