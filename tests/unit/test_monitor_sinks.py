"""Payloads and delivery of notifications; HTTP is simulated with httpx.MockTransport."""

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from dlq_operator.monitor.alerts import AlertLevel, Notification, NotificationKind
from dlq_operator.monitor.metrics import MonitorMetrics
from dlq_operator.monitor.sinks import (
    KubeEvent,
    WebhookSinkConfig,
    alertmanager_payload,
    event_for,
    generic_payload,
    send_notification,
    slack_payload,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SECRET_URL = "https://hooks.example.com/services/T000/B000/s3cr3t-token"
METRICS = MonitorMetrics(CollectorRegistry())


def notification(
    kind: NotificationKind = NotificationKind.FIRING,
    level: AlertLevel = AlertLevel.CRITICAL,
    previous: AlertLevel = AlertLevel.OK,
) -> Notification:
    firing = kind is not NotificationKind.RESOLVED
    return Notification(
        namespace="shop",
        name="orders",
        topic="orders.dlq",
        kind=kind,
        level=level,
        previous_level=previous,
        figure="unresolved",
        value=57,
        warning_threshold=10,
        critical_threshold=50,
        message="DLQ orders.dlq has 57 unresolved messages (critical threshold: 50)",
        started_at=T0,
        at=T0 + timedelta(minutes=5),
        expires_at=T0 + timedelta(hours=2) if firing else None,
    )


def sink(kind: str = "generic", url: str = SECRET_URL, **extra: Any) -> WebhookSinkConfig:
    return WebhookSinkConfig.model_validate({"kind": kind, "url": url, **extra})


def deliver(
    handler: Callable[[httpx.Request], Any],
    sinks: list[WebhookSinkConfig],
    note: Notification | None = None,
) -> list[Any]:
    async def main() -> list[Any]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await send_notification(
                note or notification(), sinks, METRICS, client=client, backoff_seconds=0
            )

    return asyncio.run(main())


def counter(name: str, **labels: str) -> float:
    return METRICS.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    ("kind", "level", "event"),
    [
        (NotificationKind.FIRING, AlertLevel.CRITICAL, ("Warning", "DepthCritical")),
        (NotificationKind.FIRING, AlertLevel.WARNING, ("Warning", "DepthWarning")),
        (NotificationKind.RENOTIFY, AlertLevel.CRITICAL, ("Warning", "DepthCritical")),
        (NotificationKind.DOWNGRADED, AlertLevel.WARNING, ("Warning", "DepthWarning")),
        (NotificationKind.RESOLVED, AlertLevel.OK, ("Normal", "DepthRecovered")),
    ],
)
def test_event_for_a_notification(
    kind: NotificationKind, level: AlertLevel, event: tuple[str, str]
) -> None:
    note = notification(kind, level)
    assert event_for(note) == KubeEvent(*event, note.message)


def test_generic_payload_is_the_notification_in_camel_case() -> None:
    assert generic_payload(notification()) == {
        "kind": "firing",
        "namespace": "shop",
        "name": "orders",
        "topic": "orders.dlq",
        "level": "Critical",
        "previousLevel": "OK",
        "figure": "unresolved",
        "value": 57,
        "warningThreshold": 10,
        "criticalThreshold": 50,
        "message": "DLQ orders.dlq has 57 unresolved messages (critical threshold: 50)",
        "startedAt": "2026-01-01T00:00:00Z",
        "at": "2026-01-01T00:05:00Z",
        "expiresAt": "2026-01-01T02:00:00Z",
    }


def test_alertmanager_payload_for_a_new_alert() -> None:
    [alert] = alertmanager_payload(notification())
    assert alert["labels"] == {
        "alertname": "DeadLetterQueueDepth",
        "severity": "critical",
        "namespace": "shop",
        "deadletterqueue": "orders",
        "topic": "orders.dlq",
    }
    assert alert["annotations"]["description"] == notification().message
    assert alert["annotations"]["summary"]
    assert alert["startsAt"] == "2026-01-01T00:00:00Z"
    assert alert["endsAt"] == "2026-01-01T02:00:00Z"


def test_alertmanager_payload_ends_the_old_severity_on_a_change() -> None:
    current, ended = alertmanager_payload(
        notification(NotificationKind.DOWNGRADED, AlertLevel.WARNING, AlertLevel.CRITICAL)
    )
    assert (current["labels"]["severity"], current["endsAt"]) == ("warning", "2026-01-01T02:00:00Z")
    assert (ended["labels"]["severity"], ended["endsAt"]) == ("critical", "2026-01-01T00:05:00Z")


def test_alertmanager_payload_on_resolve_ends_the_firing_alert_now() -> None:
    [alert] = alertmanager_payload(
        notification(NotificationKind.RESOLVED, AlertLevel.OK, AlertLevel.WARNING)
    )
    assert alert["labels"]["severity"] == "warning"
    assert alert["endsAt"] == "2026-01-01T00:05:00Z"


def test_alertmanager_payload_without_expiry_leaves_ends_at_to_alertmanager() -> None:
    note = notification(NotificationKind.RENOTIFY, previous=AlertLevel.CRITICAL)
    [alert] = alertmanager_payload(Notification(**{**note.__dict__, "expires_at": None}))
    assert "endsAt" not in alert


def test_slack_payload_has_an_emoji_by_level_and_optional_blocks() -> None:
    critical = slack_payload(notification())
    assert critical["text"].startswith(":rotating_light: *Critical*: DLQ orders.dlq has 57")
    assert "shop/orders" in critical["text"]
    assert critical["blocks"][0]["text"]["text"] == critical["text"]
    warning = slack_payload(notification(level=AlertLevel.WARNING), blocks=False)
    assert warning["text"].startswith(":warning:")
    assert "blocks" not in warning
    resolved = slack_payload(notification(NotificationKind.RESOLVED, AlertLevel.OK))
    assert resolved["text"].startswith(":white_check_mark: *Resolved*")


def test_sink_config_needs_exactly_one_url_source(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        WebhookSinkConfig.model_validate({"kind": "slack"})
    with pytest.raises(ValidationError):
        WebhookSinkConfig.model_validate(
            {"kind": "slack", "url": SECRET_URL, "url_file": str(tmp_path / "url")}
        )
    assert SECRET_URL not in repr(sink())


def test_each_sink_gets_its_payload_at_its_endpoint() -> None:
    seen: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen[str(request.url)] = (json.loads(request.content), request.headers.get("authorization"))
        return httpx.Response(200)

    results = deliver(
        handler,
        [
            sink(
                "generic", "https://generic.example.com/hook", headers={"Authorization": "Bearer t"}
            ),
            sink("alertmanager", "http://am.example.com:9093/"),
            sink("slack", SECRET_URL),
        ],
    )
    assert [r.delivered for r in results] == [True, True, True]
    assert seen["https://generic.example.com/hook"] == (generic_payload(notification()), "Bearer t")
    assert seen["http://am.example.com:9093/api/v2/alerts"][0] == alertmanager_payload(
        notification()
    )
    assert seen[SECRET_URL][0] == slack_payload(notification())


def test_transient_failures_are_retried_and_counted_once() -> None:
    responses = iter([httpx.Response(503), httpx.Response(429), httpx.Response(200)])
    before = counter("dlq_alert_notifications_total", sink="retried", kind="firing")
    [result] = deliver(lambda request: next(responses), [sink(name="retried")])
    assert (result.delivered, result.attempts, result.error) == (True, 3, None)
    assert counter("dlq_alert_notifications_total", sink="retried", kind="firing") == before + 1


def test_a_client_error_is_not_retried() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(404)

    before = counter("dlq_alert_sink_failures_total", sink="generic-0")
    [result] = deliver(handler, [sink()])
    assert (result.delivered, result.attempts, result.error) == (False, 1, "HTTP 404")
    assert len(calls) == 1
    assert counter("dlq_alert_sink_failures_total", sink="generic-0") == before + 1


def test_attempts_are_bounded() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError(f"cannot connect to {request.url}", request=request)

    [result] = deliver(handler, [sink(max_attempts=4)])
    assert (result.delivered, result.attempts, result.error) == (False, 4, "ConnectError")
    assert len(calls) == 4


def test_the_url_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "good.example.com":
            return httpx.Response(200)
        raise httpx.ConnectError(f"cannot connect to {request.url}", request=request)

    caplog.set_level(logging.DEBUG)
    results = deliver(
        handler, [sink(url=SECRET_URL), sink(url="https://good.example.com/s3cr3t-token")]
    )
    assert [r.delivered for r in results] == [False, True]
    assert "s3cr3t" not in caplog.text
    assert "s3cr3t" not in repr(results)
    assert "generic-0" in caplog.text
    assert any(record.name == "httpx" for record in caplog.records)


def test_one_slow_or_failing_sink_does_not_hold_up_the_others() -> None:
    # The waiting sink answers only once the last sink has been called: delivered one
    # after the other, it would time out instead.
    last_called = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "hanging.example.com":
            await asyncio.sleep(30)
        if request.url.host == "waiting.example.com":
            await last_called.wait()
        if request.url.host == "broken.example.com":
            raise httpx.ReadError("connection reset", request=request)
        if request.url.host == "fine.example.com":
            last_called.set()
        return httpx.Response(202)

    results = deliver(
        handler,
        [
            sink(url="https://hanging.example.com/", timeout_seconds=0.1, max_attempts=2),
            sink(url="https://waiting.example.com/", timeout_seconds=5),
            sink(url="https://broken.example.com/"),
            sink("slack", "https://fine.example.com/"),
        ],
    )
    assert [(r.sink, r.delivered, r.error) for r in results] == [
        ("generic-0", False, "TimeoutError"),
        ("generic-1", True, None),
        ("generic-2", False, "ReadError"),
        ("slack-3", True, None),
    ]


def test_url_file_is_read_at_send_time(tmp_path: Path) -> None:
    url_file = tmp_path / "url"
    config = WebhookSinkConfig.model_validate({"kind": "slack", "url_file": str(url_file)})
    received: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        received.append(str(request.url))
        return httpx.Response(200)

    [missing] = deliver(handler, [config])
    assert (missing.delivered, missing.error) == (False, "URL file unreadable (FileNotFoundError)")
    url_file.write_text("https://rotated.example.com/hook\n")
    [result] = deliver(handler, [config])
    assert result.delivered
    assert received == ["https://rotated.example.com/hook"]


def test_no_sinks_no_work() -> None:
    assert asyncio.run(send_notification(notification(), [], METRICS)) == []
