"""The group consumer's guard against a group join lost to a poll's timeout."""

from types import SimpleNamespace

from pytest_mock import MockerFixture

from dlq_operator.kafka._compat import finish_interrupted_join


def consumer_with(join_task: object, mocker: MockerFixture) -> SimpleNamespace:
    coordinator = SimpleNamespace(_join_task=join_task, request_rejoin=mocker.Mock())
    return SimpleNamespace(_coordinator=coordinator)


def test_a_join_left_pending_by_a_poll_is_asked_for_again(mocker: MockerFixture) -> None:
    consumer = consumer_with(object(), mocker)

    finish_interrupted_join(consumer)  # type: ignore[arg-type]

    consumer._coordinator.request_rejoin.assert_called_once_with()


def test_a_member_with_no_join_in_flight_is_left_alone(mocker: MockerFixture) -> None:
    consumer = consumer_with(None, mocker)

    finish_interrupted_join(consumer)  # type: ignore[arg-type]

    consumer._coordinator.request_rejoin.assert_not_called()
