"""The worker's decision for one dead letter: park it, or retry it when."""

import pytest

from dlq_operator.api import DeadLetterQueueSpec, RetryPolicySpec
from dlq_operator.envelope import DlqEnvelope, ParkedReason, parse_timestamp
from dlq_operator.errors import EnvelopeError
from dlq_operator.reconcile.workload import worker_settings
from dlq_operator.settings import WorkerSettings
from dlq_operator.worker.decide import Park, Retry, RetryRules, decide

FAILED_AT = "2024-05-01T10:00:00.000Z"
FAILED_EPOCH = 1714557600.0
RECORD_TS = FAILED_EPOCH + 0.2  # the DLQ record is written just after the failure
SOURCE = "orders"  # the source topic of the worker's DLQ
RULES = RetryRules(
    max_retries=3,
    initial_delay=1.0,
    max_delay=60.0,
    multiplier=2.0,
    non_retryable_error_codes=frozenset({"VALIDATION_FAILED"}),
)


def envelope(
    retry_count: int = 0,
    error_code: str | None = None,
    processed: str = FAILED_AT,
    topic: str = SOURCE,
) -> DlqEnvelope:
    return DlqEnvelope(
        originalTopic=topic,
        originalPartition=0,
        originalOffset="7",
        originalTimestamp=FAILED_AT,
        event={"id": 1},
        error="boom",
        errorCode=error_code,
        consumerGroup="orders-service",
        processingTimestamp=processed,
        retryCount=retry_count,
    )


def test_timestamps_here_agree() -> None:
    assert parse_timestamp(FAILED_AT) == FAILED_EPOCH


@pytest.mark.parametrize("reason", list(ParkedReason))
def test_a_record_that_did_not_decode_is_parked_with_its_reason(reason: ParkedReason) -> None:
    decision = decide(EnvelopeError(reason, "why"), [], RECORD_TS, RULES, source_topic=SOURCE)

    assert decision == Park(reason, "why")


def test_a_non_retryable_error_code_is_parked() -> None:
    decision = decide(
        envelope(error_code="VALIDATION_FAILED"), [], RECORD_TS, RULES, source_topic=SOURCE
    )

    assert decision == Park(
        ParkedReason.NON_RETRYABLE, "error code VALIDATION_FAILED is never retried"
    )


def test_the_header_error_code_counts_when_the_envelope_has_none() -> None:
    headers = [("error-code", b"VALIDATION_FAILED")]

    assert isinstance(decide(envelope(), headers, RECORD_TS, RULES, source_topic=SOURCE), Park)
    assert isinstance(
        decide(envelope(error_code="TIMEOUT"), headers, RECORD_TS, RULES, source_topic=SOURCE),
        Retry,
    )


def test_the_default_error_code_can_be_made_non_retryable() -> None:
    rules = RetryRules(non_retryable_error_codes=frozenset({"PROCESSING_FAILED"}))

    decision = decide(envelope(), [], RECORD_TS, rules, source_topic=SOURCE)

    assert decision == Park(
        ParkedReason.NON_RETRYABLE, "error code PROCESSING_FAILED is never retried"
    )


def test_non_retryable_is_the_reason_even_when_retries_are_also_exhausted() -> None:
    decision = decide(
        envelope(retry_count=9, error_code="VALIDATION_FAILED"),
        [],
        RECORD_TS,
        RULES,
        source_topic=SOURCE,
    )

    assert isinstance(decision, Park)
    assert decision.reason == ParkedReason.NON_RETRYABLE


@pytest.mark.parametrize("retry_count", [3, 4, 100])
def test_retries_are_exhausted_at_max_retries(retry_count: int) -> None:
    decision = decide(envelope(retry_count=retry_count), [], RECORD_TS, RULES, source_topic=SOURCE)

    assert decision == Park(
        ParkedReason.RETRIES_EXHAUSTED, f"retryCount {retry_count} reached maxRetries 3"
    )


def test_max_retries_zero_never_retries() -> None:
    assert isinstance(
        decide(envelope(), [], RECORD_TS, RetryRules(max_retries=0), source_topic=SOURCE), Park
    )


@pytest.mark.parametrize(("retry_count", "delay"), [(0, 1.0), (1, 2.0), (2, 4.0)])
def test_a_retry_is_due_a_backoff_after_the_failure(retry_count: int, delay: float) -> None:
    decision = decide(envelope(retry_count=retry_count), [], RECORD_TS, RULES, source_topic=SOURCE)

    assert decision == Retry(FAILED_EPOCH + delay)


def test_jitter_comes_from_the_given_random_source() -> None:
    rules = RetryRules(jitter=0.5)

    decision = decide(envelope(), [], RECORD_TS, rules, source_topic=SOURCE, rand=lambda: 0.0)

    assert decision == Retry(FAILED_EPOCH + 0.5)


@pytest.mark.parametrize("processed", ["not a time", "", "1714557600000"])
def test_an_unreadable_processing_timestamp_falls_back_to_the_record_timestamp(
    processed: str,
) -> None:
    decision = decide(envelope(processed=processed), [], RECORD_TS, RULES, source_topic=SOURCE)

    assert decision == Retry(RECORD_TS + 1.0)


def test_a_processing_timestamp_after_the_record_was_written_is_not_trusted() -> None:
    decision = decide(
        envelope(processed="2099-01-01T00:00:00Z"), [], RECORD_TS, RULES, source_topic=SOURCE
    )

    assert decision == Retry(RECORD_TS + 1.0)


def test_an_envelope_of_another_topic_is_parked_never_republished() -> None:
    # The worker writes with its own identity: a crafted envelope must not be a way to
    # write into somebody else's topic.
    decision = decide(envelope(topic="payments"), [], RECORD_TS, RULES, source_topic=SOURCE)
    assert decision == Park(
        ParkedReason.FOREIGN_TOPIC,
        "originalTopic payments is not orders, the source topic of this dead-letter queue; "
        "the retry worker republishes only there",
    )


def test_the_foreign_check_comes_before_the_retry_rules() -> None:
    exhausted = envelope(retry_count=9, topic="__consumer_offsets")
    decision = decide(exhausted, [], RECORD_TS, RULES, source_topic=SOURCE)
    assert isinstance(decision, Park) and decision.reason is ParkedReason.FOREIGN_TOPIC


def test_a_retry_policy_reaches_the_rules_through_the_worker_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = RetryPolicySpec.model_validate(
        {
            "maxRetries": 5,
            "backoff": {"initialDelay": "500ms", "maxDelay": "2m", "multiplier": 3, "jitter": 0.1},
            "nonRetryableErrorCodes": ["VALIDATION_FAILED"],
        }
    )
    spec = DeadLetterQueueSpec(source_topic=SOURCE)
    for key, value in worker_settings("shop", "orders", spec, policy).environment().items():
        monkeypatch.setenv(key, value)
    assert RetryRules.from_settings(WorkerSettings()) == RetryRules(
        max_retries=5,
        initial_delay=0.5,
        max_delay=120.0,
        multiplier=3.0,
        jitter=0.1,
        non_retryable_error_codes=frozenset({"VALIDATION_FAILED"}),
    )
