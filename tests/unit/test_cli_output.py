"""What the CLI prints and how it exits: formats, record summaries, exit codes, its name."""

import json
from datetime import UTC, datetime

import pytest
import yaml
from pydantic import ValidationError
from rich.console import Console

from dlq_operator.api import MessageSelector
from dlq_operator.cli.app import program_name
from dlq_operator.cli.errors import ExitCode, exit_code_for
from dlq_operator.cli.output import OutputFormat, age, emit, table, truncate
from dlq_operator.cli.records import describe, summarize
from dlq_operator.envelope import DlqEnvelope, encode_dlq_record
from dlq_operator.errors import (
    ConfigurationError,
    DlqError,
    KafkaError,
    KafkaUnavailable,
    KubeError,
    KubeUnavailable,
    NotADeadLetterTopic,
    NotConfirmed,
    OffsetOutOfRange,
    ResourceNotFound,
    TopicNotFound,
)
from dlq_operator.kafka import ConsumedRecord

ROWS = [{"partition": 0, "offset": 7, "error": "boom"}]


def test_json_and_yaml_print_the_data_as_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    emit(ROWS, OutputFormat.JSON, lambda: pytest.fail("no table for json"))
    assert json.loads(capsys.readouterr().out) == ROWS
    emit(ROWS, OutputFormat.YAML, lambda: pytest.fail("no table for yaml"))
    assert yaml.safe_load(capsys.readouterr().out) == ROWS


def test_tables_show_missing_values_as_a_dash() -> None:
    console = Console(width=60, record=True)
    console.print(table("Title", ["Name", "Count"], [["a", 1], ["b", None]]))
    text = console.export_text()
    assert "Title" in text
    assert [line.split() for line in text.splitlines() if line.strip().startswith("b")] == [
        ["b", "-"]
    ]


def test_truncate_keeps_one_line() -> None:
    assert truncate("short", 10) == "short"
    assert truncate("two\nlines  and   spaces", 30) == "two lines and spaces"
    assert truncate("x" * 60, 50) == "x" * 49 + "…"


@pytest.mark.parametrize(
    ("ago_seconds", "shown"),
    [(5, "5s"), (119, "119s"), (120, "2m"), (7199, "119m"), (7200, "2h"), (3 * 86400, "3d")],
)
def test_ages_as_kubectl_shows_them(ago_seconds: int, shown: str) -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    stamp = datetime.fromtimestamp(now.timestamp() - ago_seconds, UTC).isoformat()
    assert age(stamp.replace("+00:00", "Z"), now) == shown
    assert age(None, now) is None
    assert age("not a time", now) == "not a time"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (TopicNotFound("t"), ExitCode.UNKNOWN_TOPIC),
        (NotADeadLetterTopic("t"), ExitCode.NOT_A_DEAD_LETTER_TOPIC),
        (OffsetOutOfRange("o"), ExitCode.OUT_OF_RANGE),
        (KafkaUnavailable("k"), ExitCode.KAFKA_UNREACHABLE),
        (KubeUnavailable("k"), ExitCode.CLUSTER_UNREACHABLE),
        (ResourceNotFound("r"), ExitCode.RESOURCE_NOT_FOUND),
        (ConfigurationError("c"), ExitCode.USAGE),
        (NotConfirmed("n"), ExitCode.FAILED),
        (KafkaError("k"), ExitCode.FAILED),
        (KubeError("403"), ExitCode.FAILED),
        (DlqError("r"), ExitCode.FAILED),
    ],
)
def test_exit_codes(error: Exception, code: ExitCode) -> None:
    assert exit_code_for(error) == code


def test_an_invalid_selector_is_a_usage_error() -> None:
    with pytest.raises(ValidationError) as caught:
        MessageSelector(from_offset=5, to_offset=2)
    assert exit_code_for(caught.value) == ExitCode.USAGE


@pytest.mark.parametrize(
    ("argv0", "name"),
    [
        ("/usr/local/bin/kubectl-dlq", "kubectl dlq"),
        ("kubectl-dlq", "kubectl dlq"),
        ("/venv/bin/dlq-admin", "dlq-admin"),
        ("", "dlq-admin"),
    ],
)
def test_program_name_follows_argv0(argv0: str, name: str) -> None:
    assert program_name(argv0) == name


ENVELOPE = DlqEnvelope.model_validate(
    {
        "originalTopic": "orders",
        "originalPartition": 2,
        "originalOffset": "1042",
        "originalKey": "order-7",
        "originalTimestamp": "2026-03-01T11:00:00.000Z",
        "event": {"id": 7},
        "error": "timeout calling pricing",
        "errorCode": "TIMEOUT",
        "consumerGroup": "orders-service",
        "processingTimestamp": "2026-03-01T11:00:01.000Z",
        "retryCount": 3,
    }
)


def consumed(value: bytes | None, headers: list[tuple[str, bytes | None]]) -> ConsumedRecord:
    return ConsumedRecord("orders.dlq", 1, 5, 1772362800000, b"order-7", value, headers)


def test_summary_of_an_envelope() -> None:
    written = encode_dlq_record(ENVELOPE)
    summary = summarize(consumed(written.value, list(written.headers)))
    assert summary == {
        "partition": 1,
        "offset": 5,
        "timestamp": "2026-03-01T11:00:00.000Z",
        "key": "order-7",
        "originalTopic": "orders",
        "errorCode": "TIMEOUT",
        "retryCount": 3,
        "error": "timeout calling pricing",
        "processingTimestamp": "2026-03-01T11:00:01.000Z",
        "dlqId": "orders.dlq/1/5",
        "malformed": None,
    }


def test_summary_of_a_record_that_is_not_an_envelope() -> None:
    summary = summarize(
        consumed(b"{oops", [("original-topic", b"orders"), ("error-code", b"PARSE")])
    )
    assert summary["malformed"].startswith("MalformedEnvelope: value is not JSON")
    assert summary["originalTopic"] == "orders"
    assert summary["errorCode"] == "PARSE"
    assert summary["retryCount"] is None and summary["error"] is None


def test_detail_keeps_every_header_and_the_raw_value_of_a_malformed_record() -> None:
    written = encode_dlq_record(ENVELOPE)
    detail = describe(consumed(written.value, [*written.headers, ("empty", None)]))
    assert detail["envelope"] == ENVELOPE.wire_dict()
    assert detail["value"] is None
    assert detail["headers"][-1] == {"name": "empty", "value": None}
    assert [h["name"] for h in detail["headers"]][:3] == [
        "error-code",
        "original-topic",
        "retry-count",
    ]
    broken = describe(consumed(b"\xffnot utf-8", []))
    assert broken["envelope"] is None
    assert broken["value"] == "\ufffdnot utf-8"
    assert "not UTF-8" in broken["malformed"]
