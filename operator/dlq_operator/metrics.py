"""Prometheus metrics: each process registers its own set in a registry it chooses.

No module registers a metric when it is imported. A metric set (a :class:`MetricSet`) is
an object created with the registry it registers in, and the process that creates it
serves that registry:

- the operator (``dlq-operator run``): :class:`~dlq_operator.monitor.metrics.MonitorMetrics`
  and :class:`~dlq_operator.reprocess.metrics.ReprocessMetrics` in one registry;
- a retry worker (``dlq-operator worker``): :class:`~dlq_operator.worker.metrics.WorkerMetrics`;
- an application: :class:`~dlq_operator.publisher.PublisherMetrics`, by default in
  ``prometheus_client``'s default registry, which is the one an application serves.

So the operator's ``dlq_parked`` gauge and the worker's ``dlq_parked_total`` counter, which
one registry could not hold together (a counter claims its name without ``_total`` too),
never meet. Tests create each set in a registry of their own and read their values there.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)


def process_registry() -> CollectorRegistry:
    """A new registry for one process's metrics, with the ``process_*`` and ``python_*``
    series that ``prometheus_client``'s default registry has."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class MetricSet:
    """The metrics of one part of a process, registered in the registry it is given."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)

    def gauge(self, name: str, documentation: str, *labels: str) -> Gauge:
        return Gauge(name, documentation, labels, registry=self.registry)

    def histogram(self, name: str, documentation: str, *labels: str) -> Histogram:
        return Histogram(name, documentation, labels, registry=self.registry)
