"""Where notifications go: Kubernetes Events, and webhooks configured for the operator.

Payload builders are pure. :func:`send_notification` delivers one notification to every
webhook sink at once; each sink has its own timeout per attempt and a bounded number of
attempts with a short backoff, so a slow or broken sink delays nobody else and the total
time is bounded. It never raises: a failure is logged and counted
(``dlq_alert_sink_failures_total``), a delivery counted (``dlq_alert_notifications_total``).

Webhook URLs are secrets (a Slack incoming-webhook URL is a bearer token), so they are
read from a mounted Secret file at send time when ``url_file`` is used, never logged, and
never taken from exception texts (httpx puts the URL in them). Logs name a sink by its
``name`` or kind and position. httpx's own request log line is redacted the same way.

Alertmanager (API v2) forgets an alert that is not re-sent before its ``endsAt``; firing
alerts therefore carry the notification's ``expires_at``, so the alert lives until
shortly after the next re-notification is due. An alert whose severity changed is sent
with the old severity ended, since Alertmanager identifies alerts by their labels.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
)

from dlq_operator.api.common import format_timestamp
from dlq_operator.api.conditions import DEPTH_CRITICAL, DEPTH_WARNING
from dlq_operator.logs import keep_secret
from dlq_operator.monitor.alerts import AlertLevel, Notification, NotificationKind
from dlq_operator.monitor.metrics import MonitorMetrics

logger = logging.getLogger(__name__)

ALERT_NAME = "DeadLetterQueueDepth"


class KubeEvent(NamedTuple):
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def event_for(notification: Notification) -> KubeEvent:
    """The Kubernetes Event to record on the DLQ resource for a notification."""
    if notification.kind is NotificationKind.RESOLVED:
        return KubeEvent(type="Normal", reason="DepthRecovered", message=notification.message)
    # The reason of the DepthAlert condition at this level.
    reason = DEPTH_CRITICAL if notification.level is AlertLevel.CRITICAL else DEPTH_WARNING
    return KubeEvent(type="Warning", reason=reason, message=notification.message)


class WebhookSinkConfig(BaseModel):
    """One webhook receiving every DLQ's notifications."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["generic", "alertmanager", "slack"]
    name: str | None = Field(None, description="Names the sink in logs and metrics.")
    url: SecretStr | None = Field(
        None, description="For alertmanager the base URL; /api/v2/alerts is appended."
    )
    url_file: Path | None = Field(None, description="File (a mounted Secret) holding the URL.")
    timeout_seconds: float = Field(5.0, gt=0, le=60, description="Per attempt.")
    max_attempts: int = Field(3, ge=1, le=10)
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    slack_blocks: bool = Field(True, description="Slack: add Block Kit blocks to the text.")

    @model_validator(mode="after")
    def _one_url_source(self) -> WebhookSinkConfig:
        if (self.url is None) == (self.url_file is None):
            raise ValueError("set exactly one of url and url_file")
        return self

    def label(self, index: int) -> str:
        return self.name or f"{self.kind}-{index}"


class SinkResult(NamedTuple):
    sink: str
    delivered: bool
    attempts: int
    error: str | None


def generic_payload(notification: Notification) -> dict[str, Any]:
    n = notification
    return {
        "kind": n.kind.value,
        "namespace": n.namespace,
        "name": n.name,
        "topic": n.topic,
        "level": n.level.label,
        "previousLevel": n.previous_level.label,
        "figure": n.figure,
        "value": n.value,
        "warningThreshold": n.warning_threshold,
        "criticalThreshold": n.critical_threshold,
        "message": n.message,
        "startedAt": format_timestamp(n.started_at, whole_seconds=True),
        "at": format_timestamp(n.at, whole_seconds=True),
        "expiresAt": format_timestamp(n.expires_at, whole_seconds=True) if n.expires_at else None,
    }


def alertmanager_payload(notification: Notification) -> list[dict[str, Any]]:
    n = notification

    def alert(level: AlertLevel, ends_at: datetime | None) -> dict[str, Any]:
        severity = level.label.lower()
        body: dict[str, Any] = {
            "labels": {
                "alertname": ALERT_NAME,
                "severity": severity,
                "namespace": n.namespace,
                "deadletterqueue": n.name,
                "topic": n.topic,
            },
            "annotations": {
                "summary": f"Dead-letter queue {n.namespace}/{n.name} is at {severity} level",
                "description": n.message,
            },
            "startsAt": format_timestamp(n.started_at, whole_seconds=True),
        }
        if ends_at is not None:
            body["endsAt"] = format_timestamp(ends_at, whole_seconds=True)
        return body

    if n.kind is NotificationKind.RESOLVED:
        return [alert(n.previous_level, n.at)]
    alerts = [alert(n.level, n.expires_at)]
    if n.previous_level not in (AlertLevel.OK, n.level):
        alerts.append(alert(n.previous_level, n.at))
    return alerts


_SLACK_EMOJI = {
    AlertLevel.OK: ":white_check_mark:",
    AlertLevel.WARNING: ":warning:",
    AlertLevel.CRITICAL: ":rotating_light:",
}


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(notification: Notification, *, blocks: bool = True) -> dict[str, Any]:
    """A Slack incoming-webhook message; ``text`` alone suits Slack-compatible chats."""
    n = notification
    title = {
        NotificationKind.FIRING: n.level.label,
        NotificationKind.DOWNGRADED: f"{n.level.label} (was {n.previous_level.label})",
        NotificationKind.RENOTIFY: f"Still {n.level.label.lower()}",
        NotificationKind.RESOLVED: "Resolved",
    }[n.kind]
    text = (
        f"{_SLACK_EMOJI[n.level]} *{title}*: {_slack_escape(n.message)} "
        f"(DeadLetterQueue {n.namespace}/{n.name})"
    )
    payload: dict[str, Any] = {"text": text}
    if blocks:
        context = f"alerting since {format_timestamp(n.started_at, whole_seconds=True)}"
        payload["blocks"] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ]
    return payload


def _payload(config: WebhookSinkConfig, notification: Notification) -> Any:
    if config.kind == "alertmanager":
        return alertmanager_payload(notification)
    if config.kind == "slack":
        return slack_payload(notification, blocks=config.slack_blocks)
    return generic_payload(notification)


def _target_url(config: WebhookSinkConfig) -> str:
    if config.url is not None:
        url = config.url.get_secret_value()
    else:
        assert config.url_file is not None  # guaranteed by the model validator
        url = config.url_file.read_text().strip()
    if config.kind == "alertmanager" and not url.rstrip("/").endswith("/api/v2/alerts"):
        url = url.rstrip("/") + "/api/v2/alerts"
    return keep_secret(url)


def _retryable(status_code: int) -> bool:
    return status_code == 429 or status_code >= 500


class _Answer(NamedTuple):
    """One attempt: the error (None once delivered) and whether to try again."""

    error: str | None
    retry: bool = False


async def _post_with_retries(
    client: httpx.AsyncClient,
    config: WebhookSinkConfig,
    url: str,
    body: Any,
    backoff_seconds: float,
) -> tuple[int, str | None]:
    """(attempts made, error or None). Errors are described without the URL."""
    headers = {key: value.get_secret_value() for key, value in config.headers.items()}

    async def post() -> _Answer:
        try:
            async with asyncio.timeout(config.timeout_seconds):
                response = await client.post(
                    url, json=body, headers=headers, timeout=config.timeout_seconds
                )
        except (httpx.TransportError, TimeoutError) as exc:
            return _Answer(type(exc).__name__, retry=True)
        if response.is_success:
            return _Answer(None)
        return _Answer(f"HTTP {response.status_code}", retry=_retryable(response.status_code))

    # Unreachable, timed out, 429 or 5xx: tried again after backoff_seconds, doubling.
    retrying = AsyncRetrying(
        retry=retry_if_result(lambda answer: answer.retry),
        stop=stop_after_attempt(config.max_attempts),
        wait=wait_exponential(multiplier=backoff_seconds),
    )
    try:
        answer: _Answer = await retrying(post)
    except RetryError as exhausted:
        answer = exhausted.last_attempt.result()
    return retrying.statistics["attempt_number"], answer.error


async def _deliver(
    client: httpx.AsyncClient,
    index: int,
    config: WebhookSinkConfig,
    notification: Notification,
    backoff_seconds: float,
    metrics: MonitorMetrics,
) -> SinkResult:
    sink = config.label(index)
    attempts = 0
    try:
        url = _target_url(config)
    except OSError as exc:
        error: str | None = f"URL file unreadable ({type(exc).__name__})"
    else:
        try:
            attempts, error = await _post_with_retries(
                client, config, url, _payload(config, notification), backoff_seconds
            )
        except Exception as exc:  # one sink's surprise must not reach the monitor loop
            error = f"unexpected {type(exc).__name__}"
    if error is None:
        metrics.notifications.labels(sink, notification.kind.value).inc()
        logger.debug(
            "Alert sink %s (%s) accepted a %s notification",
            sink,
            config.kind,
            notification.kind.value,
        )
        return SinkResult(sink=sink, delivered=True, attempts=attempts, error=None)
    metrics.sink_failures.labels(sink).inc()
    logger.warning(
        "Alert sink %s (%s, #%d) failed after %d attempt(s): %s",
        sink,
        config.kind,
        index,
        attempts,
        error,
    )
    return SinkResult(sink=sink, delivered=False, attempts=attempts, error=error)


async def send_notification(
    notification: Notification,
    sinks: Sequence[WebhookSinkConfig],
    metrics: MonitorMetrics,
    *,
    client: httpx.AsyncClient | None = None,
    backoff_seconds: float = 0.5,
) -> list[SinkResult]:
    """Deliver to every sink concurrently; one result per sink, in order, each counted in
    ``metrics``. Never raises."""
    if not sinks:
        return []
    owned = client is None
    active = client if client is not None else httpx.AsyncClient()
    try:
        return list(
            await asyncio.gather(
                *(
                    _deliver(active, index, config, notification, backoff_seconds, metrics)
                    for index, config in enumerate(sinks)
                )
            )
        )
    finally:
        if owned:
            await active.aclose()


class _RedactUrls(logging.Filter):
    """httpx logs each request with its full URL; keep only scheme and host."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                f"{arg.scheme}://{arg.host}/[redacted]" if isinstance(arg, httpx.URL) else arg
                for arg in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_RedactUrls())
