"""Exponential backoff with jitter, as the retry worker applies it."""

from typing import Any

import pytest

from dlq_operator.worker.backoff import compute_backoff

SEED_POLICY: dict[str, Any] = {"initial": 1.0, "multiplier": 2.0, "max_delay": 60.0}


@pytest.mark.parametrize(
    ("retry_count", "expected"),
    [
        (0, 1.0),
        (1, 2.0),
        (2, 4.0),
        (3, 8.0),
        (4, 16.0),
        (5, 32.0),
        (6, 60.0),
        (7, 60.0),
        (50, 60.0),
    ],
)
def test_delays_double_from_the_initial_delay_up_to_the_cap(
    retry_count: int, expected: float
) -> None:
    assert compute_backoff(retry_count, **SEED_POLICY) == expected


def test_a_huge_retry_count_is_the_cap_not_an_overflow() -> None:
    assert compute_backoff(10**6, **SEED_POLICY) == 60.0
    assert compute_backoff(10**18, initial=0.5, multiplier=10.0, max_delay=3600.0) == 3600.0


def test_multiplier_one_is_a_constant_delay() -> None:
    assert compute_backoff(9, initial=5.0, multiplier=1.0, max_delay=60.0) == 5.0


def test_an_initial_delay_above_the_cap_is_capped() -> None:
    assert compute_backoff(0, initial=120.0, multiplier=2.0, max_delay=60.0) == 60.0


@pytest.mark.parametrize(("rand", "expected"), [(0.0, 3.0), (0.5, 4.0), (0.999999, 5.0)])
def test_jitter_spreads_the_delay_evenly_around_it(rand: float, expected: float) -> None:
    delay = compute_backoff(2, **SEED_POLICY, jitter=0.25, rand=lambda: rand)

    assert delay == pytest.approx(expected, abs=1e-4)


def test_jitter_never_goes_above_the_cap() -> None:
    assert compute_backoff(10, **SEED_POLICY, jitter=0.5, rand=lambda: 0.99) == 60.0
    assert compute_backoff(10, **SEED_POLICY, jitter=0.5, rand=lambda: 0.0) == 30.0


def test_jittered_delays_stay_within_bounds() -> None:
    values = iter(i / 1000 for i in range(1000))

    delays = [
        compute_backoff(3, **SEED_POLICY, jitter=0.1, rand=lambda: next(values))
        for _ in range(1000)
    ]

    assert min(delays) == pytest.approx(7.2)
    assert max(delays) <= 8.8
    assert max(delays) > 8.7


@pytest.mark.parametrize(
    "arguments",
    [
        {"retry_count": -1},
        {"retry_count": 0, "jitter": 1.5},
        {"retry_count": 0, "jitter": -0.1},
        {"retry_count": 0, "initial": -1.0},
    ],
)
def test_nonsense_is_refused(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        compute_backoff(**(SEED_POLICY | arguments))
