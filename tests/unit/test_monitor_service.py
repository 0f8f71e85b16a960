"""The monitor's schedule: a cycle that fails, for whatever reason, never ends monitoring."""

from __future__ import annotations

import asyncio

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
