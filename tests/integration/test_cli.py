"""``dlq-admin`` against the real broker, run as users run it: a process with KAFKA_BROKERS.

The commands of the original design keep working (``list <topic> --limit N``,
``reprocess <topic> <offset>``, ``purge <topic> --confirm``), without its flaws."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

import local_platform
from dlq_operator.envelope import DlqEnvelope, encode_dlq_record
from tests.support import headers_of, read_all, wait_for

BIN = Path(sys.executable).parent


def dlq_admin(
    bootstrap: str, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``dlq-admin``; stdin is never a terminal here."""
    return subprocess.run(
        [str(BIN / "dlq-admin"), *args],
        env={**os.environ, "KAFKA_BROKERS": bootstrap, **(env or {})},
        input=stdin or "",
        capture_output=True,
        text=True,
        # Only so that a hang fails the test instead of the session.
        timeout=120,
    )


def envelope(original: str, n: int, error_code: str | None = None) -> DlqEnvelope:
    return DlqEnvelope.model_validate(
        {
            "originalTopic": original,
            "originalPartition": 0,
            "originalOffset": str(500 + n),
            "originalKey": f"key-{n}",
            "originalTimestamp": "2026-03-01T11:00:00.000Z",
            "event": {"n": n, "text": "naïve ✓"},
            "error": f"failure number {n}",
            "errorCode": error_code,
            "consumerGroup": "orders-service",
            "processingTimestamp": "2026-03-01T11:00:01.000Z",
            "retryCount": 4,
        }
    )


def create(bootstrap: str, *topics: tuple[str, int]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, n, 1) for name, n in topics])
    finally:
        admin.close()


def write(bootstrap: str, topic: str, records: list[tuple[int, bytes | None, bytes, list]]) -> None:
    """``(partition, key, value, headers)`` each, in order."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for partition, key, value, headers in records:
            producer.send(topic, value=value, key=key, headers=headers, partition=partition)
        producer.flush()
    finally:
        producer.close()


def dead_letter(partition: int, original: str, n: int, error_code: str | None = None) -> tuple:
    record = encode_dlq_record(envelope(original, n, error_code))
    return (partition, record.key, record.value, list(record.headers))


@pytest.fixture
def dlq(kafka_bootstrap: str, topic_prefix: str) -> tuple[str, str]:
    """A 3-partition DLQ: 4, 2 and 0 dead letters, then one malformed record in partition 1;
    and its original topic. Returns (dlq, original)."""
    original, dlq = f"{topic_prefix}orders", f"{topic_prefix}orders.dlq"
    create(kafka_bootstrap, (dlq, 3), (original, 1))
    write(
        kafka_bootstrap,
        dlq,
        [dead_letter(0, original, n, "TIMEOUT" if n % 2 else None) for n in range(4)]
        + [dead_letter(1, original, n) for n in range(4, 6)]
        + [(1, b"raw", b"{not an envelope", [("error-code", b"PARSE")])],
    )
    return dlq, original


def test_list_returns_the_first_records_at_once(kafka_bootstrap: str, dlq) -> None:
    topic, original = dlq
    listed = dlq_admin(kafka_bootstrap, "list", topic, "--limit", "5", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["partition"], r["offset"]) for r in rows] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)]
    assert rows[1] | {"timestamp": None} == {
        "partition": 0,
        "offset": 1,
        "timestamp": None,
        "key": "key-1",
        "originalTopic": original,
        "errorCode": "TIMEOUT",
        "retryCount": 4,
        "error": "failure number 1",
        "processingTimestamp": "2026-03-01T11:00:01.000Z",
        "dlqId": f"{topic}/0/1",
        "malformed": None,
    }
    # More asked for than there is: every record, and the command ends at the end offsets.
    everything = json.loads(
        dlq_admin(kafka_bootstrap, "list", topic, "-l", "100", "-o", "json").stdout
    )
    assert len(everything) == 7
    malformed = everything[-1]
    assert (malformed["partition"], malformed["offset"], malformed["errorCode"]) == (1, 2, "PARSE")
    assert malformed["malformed"].startswith("MalformedEnvelope: value is not JSON")


def test_list_one_partition_from_an_offset_as_a_table(kafka_bootstrap: str, dlq) -> None:
    topic, original = dlq
    listed = dlq_admin(kafka_bootstrap, "list", topic, "--partition", "1", "--from-offset", "1")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith(f"{topic}: 2 records")
    rows = [line.split() for line in lines if line.strip().startswith("1 ")]
    assert rows[0][:5] == ["1", "1", original, "PROCESSING_FAILED", "4"]
    assert rows[1][:3] == ["1", "2", "-"] and "malformed:" in rows[1]


def test_list_of_an_empty_partition_and_yaml(kafka_bootstrap: str, dlq) -> None:
    topic, _ = dlq
    listed = dlq_admin(kafka_bootstrap, "list", topic, "-p", "2", "-o", "yaml")
    assert (listed.returncode, listed.stdout.strip()) == (0, "[]")
    assert "No records" in dlq_admin(kafka_bootstrap, "list", topic, "-p", "2").stdout


def test_show_the_full_envelope_and_headers(kafka_bootstrap: str, dlq) -> None:
    topic, original = dlq
    shown = dlq_admin(kafka_bootstrap, "show", topic, "0:1", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["envelope"] == envelope(original, 1, "TIMEOUT").wire_dict()
    assert detail["headers"] == [
        {"name": "error-code", "value": "TIMEOUT"},
        {"name": "original-topic", "value": original},
        {"name": "retry-count", "value": "4"},
    ]
    assert (detail["key"], detail["dlqId"]) == ("key-1", f"{topic}/0/1")
    table = dlq_admin(kafka_bootstrap, "show", topic, "0:1").stdout
    assert '"text": "naïve ✓"' in table and "Envelope" in table and "retry-count" in table


def test_show_a_malformed_record(kafka_bootstrap: str, dlq) -> None:
    topic, _ = dlq
    shown = dlq_admin(kafka_bootstrap, "show", topic, "1:2", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert (detail["partition"], detail["offset"], detail["envelope"]) == (1, 2, None)
    assert detail["value"] == "{not an envelope"
    assert detail["malformed"].startswith("MalformedEnvelope: value is not JSON")
    assert "not an envelope" in dlq_admin(kafka_bootstrap, "show", topic, "1:2").stdout


def test_show_a_bare_offset_only_one_partition_holds(kafka_bootstrap: str, dlq) -> None:
    topic, _ = dlq
    shown = dlq_admin(kafka_bootstrap, "show", topic, "3", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    assert (json.loads(shown.stdout)["partition"], json.loads(shown.stdout)["offset"]) == (0, 3)
    ambiguous = dlq_admin(kafka_bootstrap, "show", topic, "1")
    assert ambiguous.returncode == 2
    assert "give <partition>:<offset>" in ambiguous.stderr


def test_reprocess_one_offset_sends_exactly_that_record_home(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """The original ``reprocess <topic> <offset>``, on a one-partition DLQ as it was used."""
    original, topic = f"{topic_prefix}payments", f"{topic_prefix}payments.dlq"
    create(kafka_bootstrap, (topic, 1), (original, 1))
    write(kafka_bootstrap, topic, [dead_letter(0, original, n) for n in range(5)])
    done = dlq_admin(kafka_bootstrap, "reprocess", topic, "3")
    assert done.returncode == 0, done.stderr
    assert "Succeeded" in done.stdout and "Replayed" in done.stdout
    [record] = read_all(kafka_bootstrap, original)
    assert json.loads(record.value) == {"n": 3, "text": "naïve ✓"}
    assert record.key == b"key-3"
    headers = headers_of(record)
    assert headers["x-retry-count"] == "0"
    assert headers["x-original-offset"] == "503"
    assert headers["x-dlq-id"] == f"{topic}/0/3"
    assert headers["x-reprocessed-by"].startswith("dlq-admin/")


def test_reprocess_a_position_and_a_bare_offset_that_is_ambiguous(
    kafka_bootstrap: str, dlq
) -> None:
    topic, original = dlq
    ambiguous = dlq_admin(kafka_bootstrap, "reprocess", topic, "1")
    assert ambiguous.returncode == 2
    assert "give <partition>:<offset>, e.g. 0:1, 1:1" in ambiguous.stderr
    assert read_all(kafka_bootstrap, original) == []
    done = dlq_admin(kafka_bootstrap, "reprocess", topic, "1:1", "-o", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) | {"message": None} == {
        "source": topic,
        "dryRun": False,
        "phase": "Succeeded",
        "matched": 1,
        "replayed": 1,
        "skipped": 0,
        "failed": 0,
        "message": None,
    }
    assert [json.loads(r.value)["n"] for r in read_all(kafka_bootstrap, original)] == [5]


def test_reprocess_one_record_that_cannot_go_home_fails(
    kafka_bootstrap: str, dlq, topic_prefix: str
) -> None:
    topic, original = dlq
    refused = dlq_admin(kafka_bootstrap, "reprocess", topic, "1:2")
    assert refused.returncode == 1
    assert "the record was not replayed" in refused.stderr
    assert "not DLQ envelopes" in refused.stderr
    # Moved as it is where somebody asks, the only way a replay can deal with it.
    target = f"{topic_prefix}quarantine"
    create(kafka_bootstrap, (target, 1))
    moved = dlq_admin(kafka_bootstrap, "reprocess", topic, "1:2", "--target-topic", target)
    assert moved.returncode == 0, moved.stderr
    [record] = read_all(kafka_bootstrap, target)
    assert (record.key, record.value) == (b"raw", b"{not an envelope")
    assert headers_of(record)["error-code"] == "PARSE"
    assert read_all(kafka_bootstrap, original) == []


def test_reprocess_with_selectors_to_a_target_topic(
    kafka_bootstrap: str, dlq, topic_prefix: str
) -> None:
    topic, original = dlq
    target = f"{topic_prefix}orders.retry"
    create(kafka_bootstrap, (target, 1))
    done = dlq_admin(
        kafka_bootstrap,
        "reprocess",
        topic,
        "--partition", "0",
        "--from-offset", "1",
        "--to-offset", "3",
        "--error-code", "TIMEOUT",
        "--header", "retry-count=4",
        "--since", "1h",
        "--target-topic", target,
        "--keep-retry-count",
        "--rate", "100",
        "-o", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["matched"], summary["replayed"], summary["skipped"]) == (2, 2, 1)
    replayed = read_all(kafka_bootstrap, target)
    assert [json.loads(r.value)["n"] for r in replayed] == [1, 3]
    assert {headers_of(r)["x-retry-count"] for r in replayed} == {"4"}
    assert read_all(kafka_bootstrap, original) == []


def test_reprocess_max_and_keys(kafka_bootstrap: str, dlq, topic_prefix: str) -> None:
    topic, original = dlq
    done = dlq_admin(
        kafka_bootstrap, "reprocess", topic, "--key", "key-2", "--key", "key-5", "--key", "key-0",
        "--max", "2", "-o", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["replayed"] == 2
    # The first two matches, partition by partition: key-0 and key-2 of partition 0.
    assert [json.loads(r.value)["n"] for r in read_all(kafka_bootstrap, original)] == [0, 2]


def test_reprocess_dry_run_sends_nothing(kafka_bootstrap: str, dlq) -> None:
    topic, original = dlq
    done = dlq_admin(kafka_bootstrap, "reprocess", topic, "--dry-run", "-o", "json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    # The malformed record has no original topic to go to: skipped, as the message says.
    assert (summary["matched"], summary["replayed"], summary["skipped"]) == (6, 0, 1)
    assert "not DLQ envelopes" in summary["message"]
    assert [(s["partition"], s["offset"]) for s in summary["samples"]] == [
        (0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1)
    ]  # fmt: skip
    assert read_all(kafka_bootstrap, original) == []
    table = dlq_admin(kafka_bootstrap, "reprocess", topic, "--dry-run").stdout
    assert "Dry run" in table and "Samples" in table


def test_reprocess_from_the_parked_topic(kafka_bootstrap: str, dlq) -> None:
    topic, original = dlq
    parked = f"{topic}.parked"
    create(kafka_bootstrap, (parked, 1))
    write(kafka_bootstrap, parked, [dead_letter(0, original, 42)])
    done = dlq_admin(kafka_bootstrap, "reprocess", topic, "--source", "parked", "0:0")
    assert done.returncode == 0, done.stderr
    [record] = read_all(kafka_bootstrap, original)
    assert headers_of(record)["x-dlq-id"] == f"{parked}/0/0"


def test_ctrl_c_stops_a_replay_after_what_was_acknowledged(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    original, topic = f"{topic_prefix}slow", f"{topic_prefix}slow.dlq"
    create(kafka_bootstrap, (topic, 1), (original, 1))
    write(kafka_bootstrap, topic, [dead_letter(0, original, n) for n in range(200)])
    replaying = subprocess.Popen(
        # 40 s at 5/s: far longer than a loaded machine takes to see the first record.
        [str(BIN / "dlq-admin"), "reprocess", topic, "--rate", "5", "-o", "json"],
        env={**os.environ, "KAFKA_BROKERS": kafka_bootstrap},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: read_all(kafka_bootstrap, original), what="a first replayed record")
        replaying.send_signal(signal.SIGINT)
        out, err = replaying.communicate(timeout=60)
    finally:
        replaying.kill()
    assert replaying.returncode == 130, err
    summary = json.loads(out)
    assert summary["phase"] == "Cancelled"
    assert 0 < summary["replayed"] < 200
    assert len(read_all(kafka_bootstrap, original)) == summary["replayed"]


def offsets(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        low, high = consumer.beginning_offsets(partitions), consumer.end_offsets(partitions)
        return {p.partition: (low[p], high[p]) for p in partitions}
    finally:
        consumer.close()


def test_purge_empties_every_partition(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}wide.dlq"
    create(kafka_bootstrap, (topic, 5))
    write(kafka_bootstrap, topic, [(p, None, b"x", []) for p in range(5) for _ in range(p + 1)])
    refused = dlq_admin(kafka_bootstrap, "purge", topic)
    assert refused.returncode == 1
    assert "use --confirm" in refused.stderr
    assert offsets(kafka_bootstrap, topic) == {p: (0, p + 1) for p in range(5)}

    purged = dlq_admin(kafka_bootstrap, "purge", topic, "--confirm", "-o", "json")
    assert purged.returncode == 0, purged.stderr
    assert json.loads(purged.stdout)["partitions"] == [
        {"partition": p, "removed": p + 1, "lowOffset": p + 1, "highOffset": p + 1}
        for p in range(5)
    ]
    assert offsets(kafka_bootstrap, topic) == {p: (p + 1, p + 1) for p in range(5)}
    again = dlq_admin(kafka_bootstrap, "purge", topic, "--confirm")
    assert again.returncode == 0 and "already empty" in again.stdout


def test_purge_as_a_table(kafka_bootstrap: str, dlq) -> None:
    topic, _ = dlq
    purged = dlq_admin(kafka_bootstrap, "purge", topic, "--confirm")
    assert purged.returncode == 0, purged.stderr
    assert f"Purged 7 records from {topic}" in purged.stdout
    rows = [line.split() for line in purged.stdout.splitlines()[1:] if line.strip()[:1].isdigit()]
    assert rows == [["0", "4", "4"], ["1", "3", "3"], ["2", "0", "0"]]


@pytest.mark.parametrize(
    "command",
    [
        ["list", "{topic}"],
        ["show", "{topic}", "0:0"],
        ["reprocess", "{topic}", "0:0"],
        ["purge", "{topic}", "--confirm"],
    ],
    ids=lambda c: c[0],
)
def test_unknown_topic_exits_3(kafka_bootstrap: str, topic_prefix: str, command: list[str]) -> None:
    topic = f"{topic_prefix}missing.dlq"
    failed = dlq_admin(kafka_bootstrap, *(part.format(topic=topic) for part in command))
    assert failed.returncode == 3
    assert failed.stderr.strip() == f"error: topic {topic} does not exist"


def test_not_a_dead_letter_topic_exits_4_unless_forced(kafka_bootstrap: str, dlq) -> None:
    _, original = dlq
    write(kafka_bootstrap, original, [(0, None, b"plain", [])])
    for command in (
        ["list", original],
        ["show", original, "0:0"],
        ["purge", original, "--confirm"],
    ):
        failed = dlq_admin(kafka_bootstrap, *command)
        assert failed.returncode == 4, command
        assert "is not a dead-letter topic" in failed.stderr
    forced = dlq_admin(kafka_bootstrap, "list", original, "--force", "-o", "json")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)[0]["malformed"].startswith("MalformedEnvelope")
    assert dlq_admin(kafka_bootstrap, "show", original, "0:0", "--force").returncode == 0


@pytest.mark.parametrize(
    "command",
    [
        ["show", "{topic}", "0:4"],
        ["show", "{topic}", "7:0"],
        ["reprocess", "{topic}", "2:0"],
        ["reprocess", "{topic}", "99"],
        ["reprocess", "{topic}", "--partition", "3"],
        ["list", "{topic}", "--partition", "5"],
    ],
    ids=" ".join,
)
def test_offset_out_of_range_exits_5(kafka_bootstrap: str, dlq, command: list[str]) -> None:
    topic, original = dlq
    failed = dlq_admin(kafka_bootstrap, *(part.format(topic=topic) for part in command))
    assert failed.returncode == 5, failed.stderr
    assert failed.stderr.startswith("error: ") and len(failed.stderr.splitlines()) == 1
    assert read_all(kafka_bootstrap, original) == []


@pytest.mark.parametrize(
    "command",
    [
        ["list", "a.dlq"],
        ["show", "a.dlq", "0:0"],
        ["reprocess", "a.dlq", "0:0"],
        ["purge", "a.dlq", "--confirm"],
    ],
    ids=lambda c: c[0],
)
def test_unreachable_broker_exits_6(command: list[str]) -> None:
    closed = f"127.0.0.1:{local_platform.free_port()}"
    failed = dlq_admin(closed, *command, env={"DLQ_KAFKA_REQUEST_TIMEOUT_MS": "1000"})
    assert failed.returncode == 6, failed.stderr
    assert failed.stderr.startswith("error: ") and "unavailable" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_kafka_brokers_wins_over_the_operator_setting(kafka_bootstrap: str, dlq) -> None:
    topic, _ = dlq
    closed = f"127.0.0.1:{local_platform.free_port()}"
    listed = dlq_admin(kafka_bootstrap, "list", topic, env={"DLQ_KAFKA_BOOTSTRAP_SERVERS": closed})
    assert listed.returncode == 0, listed.stderr
    by_option = dlq_admin(closed, "list", topic, "--bootstrap-servers", kafka_bootstrap)
    assert by_option.returncode == 0, by_option.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reprocess", "x.dlq", "--since", "yesterday"], "neither an ISO-8601 time"),
        (["reprocess", "x.dlq", "--header", "tenant"], "name=value"),
        (["reprocess", "x.dlq", "a:b"], "<offset> or <partition>:<offset>"),
        (["reprocess", "x.dlq", "0:1", "--partition", "0"], "either a record position or"),
        (["reprocess", "x.dlq", "--from-offset", "5", "--to-offset", "2"], "toOffset must be >="),
        (["reprocess", "x.dlq.parked", "--source", "dlq"], "is a parked topic"),
        (["list", "x.dlq", "-o", "xml"], "xml"),
    ],
)
def test_usage_errors_exit_2(kafka_bootstrap: str, args: list[str], message: str) -> None:
    failed = dlq_admin(kafka_bootstrap, *args)
    assert failed.returncode == 2, failed.stderr
    # Usage errors are drawn in a box; its lines may cut the message anywhere.
    assert message in " ".join(re.sub("[│╭╮╰╯─]", " ", failed.stderr).split())


def test_kubectl_plugin(tools_bin: Path, kubeconfig: Path) -> None:
    """``kubectl dlq`` finds the plugin on PATH, and its help names it so."""
    shown = subprocess.run(
        [str(tools_bin / "kubectl"), "dlq", "--help"],
        env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert "Usage: kubectl dlq [OPTIONS] COMMAND" in shown.stdout
    assert "Exit codes: 0 done" in " ".join(shown.stdout.split())
