"""The retry pipeline against the real broker: DlqPublisher, the retry worker process
(``dlq-operator worker``) and the sample consumer application."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

import local_platform
from dlq_operator.settings import WorkerSettings
from tests.support import headers_of, read_all, wait_for

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SAMPLE_APP = ROOT / "examples" / "04-sample-consumer" / "app.py"


class Process:
    """A child process with its output in a log file, stopped at the end of the test."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._out, stderr=subprocess.STDOUT)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)
        self._out.close()
        return self.proc.returncode


class Worker(Process):
    def __init__(self, settings: WorkerSettings, bootstrap: str, log: Path) -> None:
        self.settings = settings
        env = {**os.environ, **settings.environment(), "DLQ_KAFKA_BOOTSTRAP_SERVERS": bootstrap}
        super().__init__([str(BIN / "dlq-operator"), "worker"], env, log)

    def metric(self, name: str, **labels: str) -> float:
        url = f"http://127.0.0.1:{self.settings.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        selector = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        wanted = f"{name}{{{selector}}}" if labels else name
        for line in text.splitlines():
            if line.startswith(wanted + " "):
                return float(line.split()[-1])
        return 0.0

    def healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.settings.health_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False


@pytest.fixture
def topics(kafka_bootstrap, topic_prefix):
    """Creates the source topic, its DLQ, parked and processed topics; returns their names."""
    source = f"{topic_prefix}orders"
    names = {
        "source": source,
        "dlq": f"{source}.dlq",
        "parked": f"{source}.dlq.parked",
        "processed": f"{source}.processed",
    }
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    # The dead-letter topics take bigger records than the source topic, so that a record
    # too large to republish can be tried.
    big = {"max.message.bytes": str(4 * 1024 * 1024)}
    admin.create_topics(
        [
            NewTopic(
                n,
                num_partitions=3,
                replication_factor=1,
                topic_configs=big if n.endswith((".dlq", ".parked")) else {},
            )
            for n in names.values()
        ]
    )
    admin.close()
    return names


@pytest.fixture
def start_worker(kafka_bootstrap, topics, tmp_path):
    started: list[Worker] = []

    def start(**policy) -> Worker:
        settings = WorkerSettings(
            source_topic=topics["source"],
            dlq_topic=topics["dlq"],
            parked_topic=topics["parked"],
            group_id=f"dlq-operator.retry.test.{topics['source']}",
            health_port=local_platform.free_port(),
            metrics_port=local_platform.free_port(),
            **policy,
        )
        worker = Worker(settings, kafka_bootstrap, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        wait_for(worker.healthy, timeout=30, what="worker health endpoint")
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def sample_app(kafka_bootstrap, topics, tmp_path):
    env = {**os.environ, "DLQ_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    app = Process(
        [sys.executable, str(SAMPLE_APP), "--topic", topics["source"], "--group", "orders-service"],
        env,
        tmp_path / "app.log",
    )
    yield app
    app.stop()


def produce(bootstrap: str, topic: str, values: list, headers=None, key: bytes | None = None):
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for value in values:
        payload = value if isinstance(value, bytes) or value is None else json.dumps(value).encode()
        producer.send(topic, key=key, value=payload, headers=headers or [])
    producer.flush()
    producer.close()


def envelope(topic: str, event: dict, retry_count: int = 0, **fields) -> dict:
    """A dead letter in the documented format, as another service would write it."""
    return {
        "originalTopic": topic,
        "originalPartition": 0,
        "originalOffset": "7",
        "originalTimestamp": "2026-01-01T00:00:00.000Z",
        "event": event,
        "error": "boom",
        "consumerGroup": "other-service",
        "processingTimestamp": "2026-01-01T00:00:01.000Z",
        "retryCount": retry_count,
        "metadata": {},
        **fields,
    }


def dlq_headers(code: str = "PROCESSING_FAILED", topic: str = "x", retry: int = 0):
    return [
        ("error-code", code.encode()),
        ("original-topic", topic.encode()),
        ("retry-count", str(retry).encode()),
    ]


def test_round_trip_through_the_sample_app(kafka_bootstrap, topics, start_worker, sample_app):
    start_worker(max_retries=3, initial_delay_seconds=1, multiplier=2)
    produce(kafka_bootstrap, topics["source"], [{"id": "e1", "failTimes": 2}], key=b"k-1")

    processed = wait_for(
        lambda: read_all(kafka_bootstrap, topics["processed"]),
        timeout=60,
        what="event processed after two retries",
    )
    assert [headers_of(r)["x-retry-count"] for r in processed] == ["2"]
    assert json.loads(processed[0].value) == {"id": "e1", "failTimes": 2}
    assert processed[0].key == b"k-1"

    dead = sorted(read_all(kafka_bootstrap, topics["dlq"]), key=lambda r: r.timestamp)
    assert [json.loads(r.value)["retryCount"] for r in dead] == [0, 1]
    first = json.loads(dead[0].value)
    # The original JSON.stringify order; errorCode is left out like an undefined field.
    assert list(first) == [
        "originalTopic",
        "originalPartition",
        "originalOffset",
        "originalKey",
        "originalTimestamp",
        "event",
        "error",
        "stack",
        "consumerGroup",
        "consumerId",
        "processingTimestamp",
        "retryCount",
        "metadata",
    ]
    assert first["originalTopic"] == topics["source"]
    assert first["originalKey"] == "k-1"
    assert first["event"] == {"id": "e1", "failTimes": 2}
    assert first["error"] == "event e1 failed on attempt 0"
    assert first["consumerGroup"] == "orders-service"
    assert first["metadata"] == {"correlationId": "e1"}
    assert isinstance(first["originalPartition"], int) and isinstance(first["originalOffset"], str)
    assert headers_of(dead[0]) == {
        "error-code": "PROCESSING_FAILED",
        "original-topic": topics["source"],
        "retry-count": "0",
    }
    assert dead[0].key == b"k-1"

    retries = [r for r in read_all(kafka_bootstrap, topics["source"]) if r.headers]
    assert [headers_of(r)["x-retry-count"] for r in retries] == ["1", "2"]
    for retry, letter in zip(retries, dead, strict=True):
        assert headers_of(retry)["x-original-offset"] == json.loads(letter.value)["originalOffset"]
        assert (
            headers_of(retry)["x-dlq-id"] == f"{topics['dlq']}/{letter.partition}/{letter.offset}"
        )
        # The backoff was waited out: 1 s after the first failure, 2 s after the second,
        # counted from the failure time the envelope records.
        failed_at = datetime.fromisoformat(json.loads(letter.value)["processingTimestamp"])
        delay_ms = retry.timestamp - failed_at.timestamp() * 1000
        assert delay_ms >= (1000 if retry is retries[0] else 2000) - 5


def test_exhausted_and_non_retryable_are_parked(kafka_bootstrap, topics, start_worker, sample_app):
    worker = start_worker(
        max_retries=3,
        initial_delay_seconds=0.2,
        multiplier=1,
        non_retryable_error_codes=["VALIDATION"],
    )
    produce(
        kafka_bootstrap,
        topics["source"],
        [
            {"id": "always", "alwaysFail": True},
            {"id": "invalid", "alwaysFail": True, "errorCode": "VALIDATION"},
        ],
    )

    parked = wait_for(
        lambda: (
            len(read_all(kafka_bootstrap, topics["parked"])) >= 2
            and read_all(kafka_bootstrap, topics["parked"])
        ),
        timeout=60,
        what="2 parked",
    )
    reasons = {json.loads(r.value)["event"]["id"]: headers_of(r)["x-parked-reason"] for r in parked}
    assert reasons == {"always": "RetriesExhausted", "invalid": "NonRetryable"}
    republished = Counter(
        json.loads(r.value)["id"] for r in read_all(kafka_bootstrap, topics["source"]) if r.headers
    )
    assert republished == {"always": 3}
    wait_for(
        lambda: (
            worker.metric("dlq_max_retries_exceeded_total", original_topic=topics["source"]) == 1
        ),
        what="counter 1",
    )
    assert worker.metric("dlq_parked_total", reason="NonRetryable") == 1


def test_record_from_another_client_is_retried(kafka_bootstrap, topics, start_worker):
    start_worker(initial_delay_seconds=0)
    value = json.dumps(envelope(topics["source"], {"id": "from-kcat"}, retry_count=1))
    subprocess.run(
        [
            "kcat",
            "-b",
            kafka_bootstrap,
            "-t",
            topics["dlq"],
            "-P",
            "-k",
            "key-9",
            "-H",
            "error-code=PROCESSING_FAILED",
            "-H",
            f"original-topic={topics['source']}",
            "-H",
            "retry-count=1",
        ],
        input=value.encode(),
        check=True,
    )
    retried = wait_for(lambda: read_all(kafka_bootstrap, topics["source"]), what="republish")
    assert json.loads(retried[0].value) == {"id": "from-kcat"}
    assert headers_of(retried[0])["x-retry-count"] == "2"
    assert headers_of(retried[0])["x-original-offset"] == "7"


MALFORMED = {
    "not json": b"this is not json",
    "json array": b"[1, 2, 3]",
    "json string": b'"hello"',
    "json number": b"42",
    "json null": b"null",
    "empty value": b"",
    "binary": bytes(range(256)),
    "truncated json": b'{"originalTopic": "a"',
    "missing originalTopic": json.dumps(
        {k: v for k, v in envelope("a", {}).items() if k != "originalTopic"}
    ).encode(),
    "empty originalTopic": json.dumps(envelope("", {})).encode(),
    "partition as string": json.dumps(envelope("a", {}, originalPartition="0")).encode(),
    "negative retryCount": json.dumps(envelope("a", {}, retry_count=-1)).encode(),
    "retryCount as string": json.dumps(envelope("a", {}, retryCount="1")).encode(),
    "metadata not an object": json.dumps(envelope("a", {}, metadata=[])).encode(),
    "missing event": json.dumps(
        {k: v for k, v in envelope("a", {}).items() if k != "event"}
    ).encode(),
    "illegal topic name": json.dumps(envelope("no spaces allowed", {})).encode(),
}


def test_malformed_records_are_parked_with_a_reason(
    kafka_bootstrap, topics, start_worker, topic_prefix
):
    worker = start_worker(initial_delay_seconds=0)
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", max_request_size=4 * 1024 * 1024
    )
    for name, value in MALFORMED.items():
        producer.send(topics["dlq"], key=name.encode(), value=value)
    producer.send(topics["dlq"], key=b"tombstone", value=None)
    # A valid envelope crafted to name another team's topic: the worker must not write there.
    foreign = f"{topic_prefix}payments"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(foreign, 1, 1)])
    admin.close()
    producer.send(
        topics["dlq"],
        key=b"foreign topic",
        value=json.dumps(envelope(foreign, {"id": 1})).encode(),
    )
    # Valid, but over 1 MiB: the source topic refuses the republish as too large.
    producer.send(
        topics["dlq"],
        key=b"big",
        value=json.dumps(envelope(topics["source"], {"blob": "x" * 1024 * 1024})).encode(),
    )
    producer.flush()
    expected = len(MALFORMED) + 3

    parked = wait_for(
        lambda: (
            len(read_all(kafka_bootstrap, topics["parked"])) >= expected
            and read_all(kafka_bootstrap, topics["parked"])
        ),
        timeout=60,
        what=f"{expected} parked records",
    )
    reasons = {r.key.decode(): headers_of(r)["x-parked-reason"] for r in parked}
    assert reasons == {
        **dict.fromkeys(MALFORMED, "MalformedEnvelope"),
        "tombstone": "MalformedEnvelope",
        "foreign topic": "ForeignTopic",
        "big": "TooLarge",
    }
    for record in parked:
        original = MALFORMED.get(record.key.decode())
        if original is not None:
            assert record.value == original, "parked records keep their value unchanged"
        assert headers_of(record)["x-parked-detail"]
    assert read_all(kafka_bootstrap, topics["source"]) == []
    assert read_all(kafka_bootstrap, foreign) == [], "the foreign topic received nothing"
    assert worker.metric("dlq_retry_failed_total", original_topic=topics["source"]) == 1
    assert worker.proc.poll() is None and worker.healthy()


def test_sigkill_loses_nothing(kafka_bootstrap, topics, start_worker):
    total = 20_000
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024
    )
    for i in range(total):
        value = json.dumps(envelope(topics["source"], {"n": i})).encode()
        producer.send(topics["dlq"], value=value, partition=i % 3)
    producer.flush()
    producer.close()

    worker = start_worker(initial_delay_seconds=0)
    wait_for(
        lambda: (
            worker.metric("dlq_retry_success_total", original_topic=topics["source"]) >= total // 4
        ),
        timeout=120,
        interval=0.05,
        what="a quarter republished",
    )
    worker.stop(signal.SIGKILL)
    start_worker(initial_delay_seconds=0)

    def all_there():
        records = read_all(kafka_bootstrap, topics["source"])
        return records if len({headers_of(r)["x-dlq-id"] for r in records}) >= total else None

    records = wait_for(all_there, timeout=180, interval=1, what="every record republished")
    ids = Counter(headers_of(r)["x-dlq-id"] for r in records)
    events = {json.loads(r.value)["n"] for r in records}
    assert events == set(range(total))
    assert len(ids) == total
    duplicates = {dlq_id: n for dlq_id, n in ids.items() if n > 1}
    # A repeat is a record sent but not yet committed at the kill: at most twice, with the
    # same id, and far fewer than the run.
    assert all(n == 2 for n in duplicates.values())
    assert len(duplicates) < total // 2
    assert read_all(kafka_bootstrap, topics["parked"]) == []


def test_sigterm_commits_and_exits_cleanly(kafka_bootstrap, topics, start_worker):
    worker = start_worker(initial_delay_seconds=0)
    produce(
        kafka_bootstrap, topics["dlq"], [envelope(topics["source"], {"n": i}) for i in range(50)]
    )
    wait_for(lambda: len(read_all(kafka_bootstrap, topics["source"])) >= 50, what="50 retried")
    assert worker.stop(signal.SIGTERM) == 0
    # A new worker of the same group finds everything committed: once it has handled a
    # new record, nothing of the first 50 was sent again.
    start_worker(initial_delay_seconds=0)
    produce(kafka_bootstrap, topics["dlq"], [envelope(topics["source"], {"n": "marker"})])
    records = wait_for(
        lambda: (
            len(read_all(kafka_bootstrap, topics["source"])) >= 51
            and read_all(kafka_bootstrap, topics["source"])
        ),
        what="marker retried",
    )
    assert len(records) == 51
