"""The monitor's schedule: a cycle that fails, for whatever reason, never ends monitoring."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from dlq_operator.errors import KafkaUnavailable
from dlq_operator.monitor.service import CycleReport, DepthMonitor


def checks_failed() -> float:
    return REGISTRY.get_sample_value("dlq_check_errors_total") or 0.0


def test_failing_cycles_are_counted_and_the_next_cycle_runs(mocker) -> None:
    monitor = DepthMonitor(mocker.Mock(), mocker.Mock(), interval=0.0)
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
        self.admin = mocker.Mock(requests_sent=0)
        self.admin.list_offsets.side_effect = lambda topics: {"orders.dlq": {0: (0, self.high)}}
        self.admin.committed_offsets.return_value = {}
        self.kube = mocker.Mock()
        self.kube.update_status.side_effect = self._write_status
        self.writes = 0

    def _write_status(self, plural: str, obj: dict, compute) -> bool:
        for key, value in compute(obj).items():
            self.resource["status"][key] = value
        self.resource["metadata"]["resourceVersion"] = str(
            int(obj["metadata"]["resourceVersion"]) + 1
        )
        self.writes += 1
        return True

    def monitor(self) -> DepthMonitor:
        return DepthMonitor(
            self.admin, self.kube, now=lambda: self.now, resources=lambda: [self.resource]
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
