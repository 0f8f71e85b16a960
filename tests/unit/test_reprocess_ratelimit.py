"""The replay's token bucket, driven by a fake clock: no test here waits for real time."""

import pytest

from dlq_operator.reprocess.ratelimit import MAX_BATCH, RateLimiter, batch_size_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sent_within(rate: float, seconds: float, send_cost: float = 0.0) -> list[float]:
    """When each message goes out when a sender paces itself with the limiter."""
    clock = FakeClock()
    limiter = RateLimiter(rate, clock=clock)
    batch = batch_size_for(rate)
    start, times = clock.now, []
    while True:
        clock.now += limiter.acquire(batch)
        if clock.now - start >= seconds:
            return times
        times += [clock.now - start] * batch
        clock.now += send_cost


@pytest.mark.parametrize("send_cost", [0.0, 0.004])
def test_500_per_second_over_10_seconds_is_within_10_percent(send_cost: float) -> None:
    times = sent_within(500, 10.0, send_cost)

    assert 4500 <= len(times) <= 5500


def test_the_rate_holds_in_every_second_no_initial_burst() -> None:
    times = sent_within(500, 10.0)

    per_second = [sum(1 for t in times if s <= t < s + 1) for s in range(10)]
    assert max(per_second) <= 550
    assert min(per_second) >= 450


def test_the_default_burst_is_a_tenth_of_a_second_and_at_least_one() -> None:
    assert RateLimiter(500).burst == 50
    assert RateLimiter(2).burst == 1
    assert RateLimiter(500, burst=5).burst == 5


def test_acquire_takes_tokens_and_says_how_long_to_wait_for_a_debt() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, burst=2, clock=clock)

    assert limiter.acquire(2) == 0
    assert limiter.acquire(1) == pytest.approx(0.1)
    assert limiter.acquire(1) == pytest.approx(0.2)
    clock.now += 0.2
    assert limiter.acquire(1) == pytest.approx(0.1)


def test_idle_time_saves_up_no_more_than_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, burst=2, clock=clock)
    clock.now += 3600

    assert limiter.acquire(2) == 0
    assert limiter.acquire(1) == pytest.approx(0.1)


def test_a_rate_of_zero_never_waits() -> None:
    limiter = RateLimiter(0, clock=FakeClock())

    assert all(limiter.acquire(MAX_BATCH) == 0 for _ in range(100))


@pytest.mark.parametrize(
    ("rate", "size"), [(0, MAX_BATCH), (0.5, 1), (15, 1), (500, 50), (1e6, MAX_BATCH)]
)
def test_batches_are_a_tenth_of_a_seconds_worth(rate: float, size: int) -> None:
    assert batch_size_for(rate) == size


def test_negative_rates_and_empty_bursts_are_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(-1)
    with pytest.raises(ValueError, match="burst"):
        RateLimiter(10, burst=0)
