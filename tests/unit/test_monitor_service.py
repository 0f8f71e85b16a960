"""The monitor's schedule: a cycle that fails, for whatever reason, never ends monitoring."""

from __future__ import annotations

import asyncio
from copy import deepcopy
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from dlq_operator.errors import KafkaUnavailable
from dlq_operator.kube import StatusWrite
from dlq_operator.monitor.metrics import MonitorMetrics
from dlq_operator.monitor.service import CycleReport, DepthMonitor

METRICS = MonitorMetrics(CollectorRegistry())


def checks_failed() -> float:
    return METRICS.registry.get_sample_value("dlq_check_errors_total") or 0.0


def test_failing_cycles_are_counted_and_the_next_cycle_runs(mocker) -> None:
    monitor = DepthMonitor(mocker.Mock(), mocker.Mock(), interval=0.0, metrics=METRICS)
    outcomes: list[BaseException | None] = [
        KafkaUnavailable("broker away"),
        RuntimeError("a bug"),
        None,
        asyncio.CancelledError(),  # ends the test's run
    ]
    ran = []

    async def cycle() -> CycleReport:
        outcome = outcomes[len(ran)]
        ran.append(outcome)
        if outcome is not None:
            raise outcome
        return CycleReport()

    monitor.cycle = cycle  # type: ignore[method-assign]
    errors_before = checks_failed()

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(monitor.run())

    assert len(ran) == 4
    assert checks_failed() - errors_before == 2


class FakeWorld:
    """The edges of one DLQ's monitor: broker answers and a status the API server keeps."""

    def __init__(self, mocker) -> None:
        self.high = 4
        self.now = datetime(2026, 1, 1, tzinfo=UTC)
        self.resource = {
            "metadata": {
                "namespace": "shop",
                "name": "orders",
                "uid": "u-1",
                "generation": 1,
                "resourceVersion": "1",
            },
            "spec": {"sourceTopic": "orders"},
            "status": {},
        }
        self.admin = mocker.Mock()
        self.admin.list_offsets.side_effect = lambda topics: {"orders.dlq": {0: (0, self.high)}}
        self.admin.committed_offsets.return_value = {}
        self.kube = mocker.Mock()
        self.kube.update_status.side_effect = self._write_status
        self.writes = 0
        # What the operator's watch-fed cache shows; it lags while cache_lags is set.
        self.cached = deepcopy(self.resource)
        self.cache_lags = False

    def _write_status(self, plural: str, obj: dict, compute) -> StatusWrite:
        replaced = self.resource["metadata"]["resourceVersion"]
        self.resource["status"].update(compute(self.resource))
        self.resource["metadata"]["resourceVersion"] = str(int(replaced) + 1)
        self.writes += 1
        if not self.cache_lags:
            self.cached = deepcopy(self.resource)
        return StatusWrite(replaced_version=replaced, written=deepcopy(self.resource))

    def monitor(self) -> DepthMonitor:
        return DepthMonitor(
            self.admin,
            self.kube,
            now=lambda: self.now,
            resources=lambda: [self.cached],
            metrics=METRICS,
        )

    def cycle(self, monitor: DepthMonitor) -> CycleReport:
        self.now += timedelta(minutes=1)
        return asyncio.run(monitor.cycle())


def test_a_quiet_dlq_is_skipped_until_its_offsets_change(mocker) -> None:
    world = FakeWorld(mocker)
    monitor = world.monitor()
    world.cycle(monitor)  # first figures
    world.cycle(monitor)  # first inflow: 0
    assert world.cycle(monitor).skipped == 0  # nothing written: remembered as quiet
    writes = world.writes

    assert world.cycle(monitor).skipped == 1
    assert world.writes == writes

    world.high = 10  # six new records during the last minute
    report = world.cycle(monitor)
    assert report.skipped == 0
    assert world.resource["status"]["messages"] == 10
    assert world.resource["status"]["inflowPerMinute"] == 6.0  # counted from the last cycle


def test_a_cache_that_has_not_seen_the_last_write_does_not_alert_twice(mocker) -> None:
    world = FakeWorld(mocker)
    world.resource["metadata"]["uid"] = "u-alerting"
    world.resource["spec"]["alerting"] = {"warnThreshold": 5, "criticalThreshold": 100}
    world.cached = deepcopy(world.resource)
    monitor = world.monitor()
    world.cycle(monitor)  # 4 messages: OK
    world.cache_lags = True
    world.high = 6
    assert world.cycle(monitor).notifications == 1
    assert world.resource["status"]["alertLevel"] == "Warning"

    # The next cycle still reads the status from before the Warning was written.
    assert world.cached["status"]["alertLevel"] == "OK"
    assert world.cycle(monitor).notifications == 0
    assert world.resource["status"]["alertLevel"] == "Warning"

    world.cache_lags = False
    world.cached = deepcopy(world.resource)  # the watch catches up
    world.high = 200
    assert world.cycle(monitor).notifications == 1
    assert world.resource["status"]["alertLevel"] == "Critical"


def test_pausing_a_dlq_turns_its_alerting_metric_off(mocker) -> None:
    world = FakeWorld(mocker)
    world.resource["metadata"]["uid"] = "u-paused"
    world.resource["spec"]["alerting"] = {"warnThreshold": 2, "criticalThreshold": 3}
    world.cached = deepcopy(world.resource)
    monitor = world.monitor()
    labels = {"namespace": "shop", "name": "orders", "topic": "orders.dlq"}

    def alerting() -> float | None:
        return METRICS.registry.get_sample_value("dlq_alerting_enabled", labels)

    assert world.cycle(monitor).notifications == 1  # 4 unresolved: critical
    assert alerting() == 1

    # An annotation changes the resourceVersion, not the generation.
    world.resource["metadata"]["annotations"] = {"dlq.orion.io/paused": "true"}
    world.resource["metadata"]["resourceVersion"] = "100"
    world.cached = deepcopy(world.resource)
    world.cycle(monitor)
    assert alerting() == 0
    assert world.resource["status"]["alertLevel"] == "OK"
    assert METRICS.registry.get_sample_value("dlq_unresolved", labels) == 4  # still measured
