"""The replay engine on the real broker (``reprocess.runner``): each selector picks exactly
the expected dead letters, checked record by record on the target topic."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from dlq_operator.api import MessageSelector, ReprocessPhase, ReprocessTarget
from dlq_operator.envelope import DlqEnvelope, KafkaRecord, encode_dlq_record
from dlq_operator.kafka import RecordProducer
from dlq_operator.reprocess.progress import Progress
from dlq_operator.reprocess.records import reprocessed_by_request
from dlq_operator.reprocess.runner import replay
from dlq_operator.settings import KafkaSettings
from tests.support import headers_of, read_all

PARTITIONS = 3
PER_PARTITION = 10
ERROR_CODES = ("TIMEOUT", "VALIDATION", None)  # None: the default, PROCESSING_FAILED
# An hour ago, on whole seconds: old enough for the broker to take, young enough to be kept.
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
BASE_MS = int(BASE.timestamp()) * 1000


@dataclass(frozen=True)
class DeadLetter:
    """What a seeded dead letter was written with, to compute what a selector must pick."""

    partition: int
    offset: int
    key: str
    error_code: str
    tenant: str
    timestamp_ms: int

    @property
    def event(self) -> dict[str, int]:
        return {"p": self.partition, "i": self.offset}


def seeded(partition: int, i: int) -> DeadLetter:
    return DeadLetter(
        partition=partition,
        offset=i,
        key=f"k{i % 4}",
        error_code=ERROR_CODES[i % 3] or "PROCESSING_FAILED",
        tenant=f"t{i % 2}",
        # A second apart; partition p's record i at the same time as the other partitions'.
        timestamp_ms=BASE_MS + i * 1000,
    )


SEEDED = [seeded(p, i) for p in range(PARTITIONS) for i in range(PER_PARTITION)]


def envelope_of(letter: DeadLetter, original_topic: str) -> DlqEnvelope:
    return DlqEnvelope.model_validate(
        {
            "originalTopic": original_topic,
            "originalPartition": letter.partition,
            "originalOffset": str(1000 + letter.offset),
            "originalKey": letter.key,
            "originalTimestamp": "2026-03-01T11:00:00.000Z",
            "event": letter.event,
            "error": "boom",
            "errorCode": ERROR_CODES[letter.offset % 3],
            "consumerGroup": "orders-service",
            "processingTimestamp": "2026-03-01T11:00:01.000Z",
            "retryCount": 2,
        }
    )


def create_topics(bootstrap: str, *topics: tuple[str, int]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, n, 1) for name, n in topics])
    finally:
        admin.close()


def write_dead_letters(bootstrap: str, dlq: str, original: str, letters: list[DeadLetter]) -> None:
    """Each letter at its own partition and offset, with its own timestamp (CreateTime)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for letter in letters:
            record = encode_dlq_record(envelope_of(letter, original))
            producer.send(
                dlq,
                value=record.value,
                key=record.key,
                headers=[*record.headers, ("tenant", letter.tenant.encode())],
                partition=letter.partition,
                timestamp_ms=letter.timestamp_ms,
            ).get(timeout=30)
    finally:
        producer.close()


@dataclass(frozen=True)
class Seeded:
    dlq: str
    original: str


@pytest.fixture(scope="module")
def seeded_dlq(kafka_bootstrap: str) -> Seeded:
    """One DLQ topic with :data:`SEEDED` in it, shared by the read-only tests here."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    seeds = Seeded(dlq=f"{prefix}orders.dlq", original=f"{prefix}orders")
    create_topics(kafka_bootstrap, (seeds.dlq, PARTITIONS), (seeds.original, 1))
    write_dead_letters(kafka_bootstrap, seeds.dlq, seeds.original, SEEDED)
    return seeds


@pytest.fixture
def target(kafka_bootstrap: str, topic_prefix: str) -> str:
    name = f"{topic_prefix}target"
    create_topics(kafka_bootstrap, (name, 1))
    return name


def at(seconds: int) -> datetime:
    return BASE + timedelta(seconds=seconds)


SELECTORS: list[tuple[str, dict[str, Any], Callable[[DeadLetter], bool]]] = [
    ("everything", {}, lambda d: True),
    ("one partition", {"partitions": [1]}, lambda d: d.partition == 1),
    ("two partitions", {"partitions": [0, 2]}, lambda d: d.partition in (0, 2)),
    ("offset range", {"fromOffset": 3, "toOffset": 6}, lambda d: 3 <= d.offset <= 6),
    ("from offset", {"fromOffset": 8}, lambda d: d.offset >= 8),
    ("to offset", {"toOffset": 0}, lambda d: d.offset == 0),
    ("time range", {"since": at(2), "until": at(5)}, lambda d: 2 <= d.offset < 5),
    # Between two records: the time index is searched to the millisecond.
    (
        "since between records",
        {"since": at(6) + timedelta(milliseconds=1)},
        lambda d: d.offset >= 7,
    ),
    ("until", {"until": at(1)}, lambda d: d.offset == 0),
    ("error code", {"errorCodes": ["TIMEOUT"]}, lambda d: d.error_code == "TIMEOUT"),
    (
        "default error code",
        {"errorCodes": ["PROCESSING_FAILED", "VALIDATION"]},
        lambda d: d.error_code in ("PROCESSING_FAILED", "VALIDATION"),
    ),
    ("keys", {"keys": ["k1", "k3"]}, lambda d: d.key in ("k1", "k3")),
    ("header", {"headers": {"tenant": "t1"}}, lambda d: d.tenant == "t1"),
    ("no such header value", {"headers": {"tenant": "t9"}}, lambda d: False),
    (
        "all at once",
        {"partitions": [0, 1], "fromOffset": 2, "errorCodes": ["VALIDATION"], "keys": ["k0"]},
        lambda d: (
            d.partition in (0, 1)
            and d.offset >= 2
            and d.error_code == "VALIDATION"
            and d.key == "k0"
        ),
    ),
]


@pytest.mark.parametrize(
    ("fields", "picks"), [(f, p) for _, f, p in SELECTORS], ids=[n for n, _, _ in SELECTORS]
)
def test_each_selector_replays_exactly_what_it_picks(
    seeded_dlq: Seeded,
    settings: KafkaSettings,
    target: str,
    kafka_bootstrap: str,
    fields: dict[str, Any],
    picks: Callable[[DeadLetter], bool],
) -> None:
    outcome = replay(
        settings,
        source_topic=seeded_dlq.dlq,
        selector=MessageSelector.model_validate(fields),
        target=ReprocessTarget(topic=target),
        rate=0,
        dry_run=False,
        reprocessed_by=reprocessed_by_request("ns", "req"),
    )
    expected = [d for d in SEEDED if picks(d)]
    assert outcome.phase is ReprocessPhase.SUCCEEDED, outcome.message
    assert (outcome.progress.matched, outcome.progress.replayed) == (len(expected), len(expected))
    assert_replayed(kafka_bootstrap, target, seeded_dlq.dlq, expected)


def assert_replayed(bootstrap: str, target: str, dlq: str, expected: list[DeadLetter]) -> None:
    """The target holds one replay of each expected dead letter, nothing else."""
    by_letter = sorted(
        read_all(bootstrap, target),
        key=lambda r: (json.loads(r.value)["p"], json.loads(r.value)["i"]),
    )
    assert [json.loads(r.value) for r in by_letter] == [d.event for d in expected]
    for record, letter in zip(by_letter, expected, strict=True):
        assert record.key == letter.key.encode()
        assert headers_of(record) == {
            "x-retry-count": "0",
            "x-original-offset": str(1000 + letter.offset),
            "x-dlq-id": f"{dlq}/{letter.partition}/{letter.offset}",
            "x-reprocessed-by": "ns/req",
        }


def test_max_takes_the_first_matches_partition_by_partition(
    seeded_dlq: Seeded, settings: KafkaSettings, target: str, kafka_bootstrap: str
) -> None:
    outcome = replay(
        settings,
        source_topic=seeded_dlq.dlq,
        selector=MessageSelector(error_codes=["TIMEOUT"], max_messages=5),
        target=ReprocessTarget(topic=target),
        rate=0,
        dry_run=False,
        reprocessed_by="ns/req",
    )
    timeouts = [d for d in SEEDED if d.error_code == "TIMEOUT"]  # 4 per partition
    assert outcome.phase is ReprocessPhase.SUCCEEDED
    assert outcome.progress.replayed == 5
    assert_replayed(kafka_bootstrap, target, seeded_dlq.dlq, timeouts[:5])


def test_to_the_original_topic_keeping_the_retry_count(
    seeded_dlq: Seeded, settings: KafkaSettings, kafka_bootstrap: str, topic_prefix: str
) -> None:
    # A DLQ of its own, so that its original topic receives only this test's replays.
    dlq, original = f"{topic_prefix}orders.dlq", f"{topic_prefix}orders"
    create_topics(kafka_bootstrap, (dlq, 2), (original, 1))
    letters = [seeded(p, i) for p in range(2) for i in range(3)]
    write_dead_letters(kafka_bootstrap, dlq, original, letters)
    outcome = replay(
        settings,
        source_topic=dlq,
        selector=MessageSelector(partitions=[1]),
        target=ReprocessTarget(reset_retry_count=False),
        rate=0,
        dry_run=False,
        reprocessed_by="dlq-admin/tester",
    )
    assert outcome.phase is ReprocessPhase.SUCCEEDED
    records = read_all(kafka_bootstrap, original)
    assert [json.loads(r.value) for r in records] == [d.event for d in letters if d.partition == 1]
    assert {headers_of(r)["x-retry-count"] for r in records} == {"2"}


def test_a_dry_run_counts_and_samples_and_sends_nothing(
    seeded_dlq: Seeded, settings: KafkaSettings, target: str, kafka_bootstrap: str
) -> None:
    outcome = replay(
        settings,
        source_topic=seeded_dlq.dlq,
        selector=MessageSelector(keys=["k2"]),
        target=ReprocessTarget(topic=target),
        rate=0,
        dry_run=True,
        reprocessed_by="ns/req",
    )
    expected = [d for d in SEEDED if d.key == "k2"]
    assert outcome.phase is ReprocessPhase.SUCCEEDED
    assert (outcome.progress.matched, outcome.progress.replayed) == (len(expected), 0)
    assert [(s.partition, s.offset) for s in outcome.samples] == [
        (d.partition, d.offset) for d in expected
    ]
    assert read_all(kafka_bootstrap, target) == []


def test_a_rate_limited_replay_sends_every_record_once(
    settings: KafkaSettings, kafka_bootstrap: str, topic_prefix: str, target: str
) -> None:
    dlq = f"{topic_prefix}bulk.dlq"
    create_topics(kafka_bootstrap, (dlq, 2))
    letters = [seeded(p, i) for p in range(2) for i in range(500)]
    with RecordProducer(settings, client_id="test-seed") as producer:
        for letter in letters:
            record = encode_dlq_record(envelope_of(letter, "unused"))
            producer.send(KafkaRecord(dlq, record.key, record.value, record.headers))
        producer.flush()
    saves: list[int] = []

    class Counting:
        def save(self, progress: Progress) -> None:
            saves.append(progress.replayed)

    outcome = replay(
        settings,
        source_topic=dlq,
        selector=MessageSelector(),
        target=ReprocessTarget(topic=target),
        rate=200,
        dry_run=False,
        reprocessed_by="ns/req",
        checkpointer=Counting(),
    )
    assert outcome.phase is ReprocessPhase.SUCCEEDED
    assert outcome.progress.replayed == 1000
    ids = [headers_of(r)["x-dlq-id"] for r in read_all(kafka_bootstrap, target)]
    assert len(ids) == len(set(ids)) == 1000
    # At 200/s the engine sends 20 at a time, saving after each: the rate shapes batches.
    assert saves[:3] == [20, 40, 60]
    assert len(saves) >= 1000 // 20


def group_offsets(bootstrap: str, group: str) -> dict[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        committed = admin.list_group_offsets(group)[group]
    finally:
        admin.close()
    return {partition.partition: at.offset for partition, at in committed.items()}


def test_resolved_watermarks_move_over_what_was_replayed(
    seeded_dlq: Seeded, settings: KafkaSettings, target: str, kafka_bootstrap: str
) -> None:
    group = f"dlq-operator.resolved.test.{uuid.uuid4().hex[:8]}"

    def replay_resolving(selector: MessageSelector, dry_run: bool = False) -> None:
        replay(
            settings,
            source_topic=seeded_dlq.dlq,
            selector=selector,
            target=ReprocessTarget(topic=target),
            rate=0,
            dry_run=dry_run,
            reprocessed_by="ns/req",
            resolved_group=group,
        )

    # Partition 0 whole, partition 1 only the TIMEOUTs (offsets 0, 3, 6, 9), partition 2 not.
    replay_resolving(MessageSelector(partitions=[0]))
    replay_resolving(MessageSelector(partitions=[1], error_codes=["TIMEOUT"]))
    # A dry run resolves nothing.
    replay_resolving(MessageSelector(partitions=[2]), dry_run=True)
    # Partition 1's watermark stops at offset 1, the first record the replay did not pick.
    assert group_offsets(kafka_bootstrap, group) == {0: PER_PARTITION, 1: 1}


def test_an_unknown_target_fails_and_says_so(
    seeded_dlq: Seeded, settings: KafkaSettings, topic_prefix: str
) -> None:
    outcome = replay(
        settings,
        source_topic=seeded_dlq.dlq,
        selector=MessageSelector(partitions=[0], max_messages=1),
        target=ReprocessTarget(topic=f"{topic_prefix}missing"),
        rate=0,
        dry_run=False,
        reprocessed_by="ns/req",
    )
    assert outcome.phase is ReprocessPhase.FAILED
    assert "does not exist" in outcome.message
    assert (outcome.progress.replayed, outcome.progress.failed) == (0, 1)


def test_cancelled_before_it_starts_sends_nothing(
    seeded_dlq: Seeded, settings: KafkaSettings, target: str, kafka_bootstrap: str
) -> None:
    cancel = threading.Event()
    cancel.set()
    outcome = replay(
        settings,
        source_topic=seeded_dlq.dlq,
        selector=MessageSelector(),
        target=ReprocessTarget(topic=target),
        rate=1,
        dry_run=False,
        reprocessed_by="ns/req",
        cancel=cancel,
    )
    assert outcome.phase is ReprocessPhase.CANCELLED
    assert outcome.progress.replayed == 0
    assert read_all(kafka_bootstrap, target) == []
