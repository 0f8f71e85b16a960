"""Each process registers its metric set in a registry it chooses; nothing registers at import."""

import subprocess
import sys
from unittest.mock import Mock

from prometheus_client import REGISTRY

from dlq_operator.metrics import process_registry
from dlq_operator.monitor.metrics import MonitorMetrics
from dlq_operator.publisher import DlqPublisher, PublisherMetrics
from dlq_operator.reprocess.metrics import ReprocessMetrics
from dlq_operator.worker.metrics import WorkerMetrics

IMPORT_EVERYTHING = """
import importlib, pkgutil
import dlq_operator
from prometheus_client import REGISTRY
for module in pkgutil.walk_packages(dlq_operator.__path__, "dlq_operator."):
    importlib.import_module(module.name)
print("\\n".join(sorted(name for name in REGISTRY._names_to_collectors if name.startswith("dlq_"))))
"""


def names(registry) -> set[str]:
    return {metric.name for metric in registry.collect()}


def test_importing_every_module_registers_no_metric() -> None:
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING], capture_output=True, text=True, check=True
    )

    assert result.stdout.split() == []


def test_the_operator_and_a_worker_serve_their_own_metrics_beside_the_process_ones() -> None:
    operator, worker = process_registry(), process_registry()
    MonitorMetrics(operator)
    ReprocessMetrics(operator)
    WorkerMetrics(worker)

    # One registry could not hold both: dlq_parked_total claims the name dlq_parked too.
    assert "dlq_parked" in names(operator)
    assert "dlq_parked" in names(worker)  # the counter, dlq_parked_total in the exposition
    assert {"dlq_unresolved", "dlq_reprocess_running"} <= names(operator)
    assert "dlq_worker_scheduled_records" not in names(operator)
    assert "dlq_unresolved" not in names(worker)
    for registry in (operator, worker):
        assert {"process_cpu_seconds", "python_info", "python_gc_objects_collected"} <= names(
            registry
        )


def test_publishers_share_one_set_in_the_default_registry_unless_given_one() -> None:
    first = DlqPublisher(consumer_group="a", producer=Mock())
    second = DlqPublisher(consumer_group="b", producer=Mock())
    own = PublisherMetrics(process_registry())
    third = DlqPublisher(consumer_group="c", producer=Mock(), metrics=own)

    assert first.metrics is second.metrics
    assert first.metrics.registry is REGISTRY
    assert third.metrics is own
