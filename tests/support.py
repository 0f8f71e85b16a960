"""Helpers shared by the platform tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from kubernetes.client.exceptions import ApiException

T = TypeVar("T")

GROUP, VERSION = "dlq.orion.io", "v1alpha1"
KINDS = {
    "deadletterqueues": "DeadLetterQueue",
    "retrypolicies": "RetryPolicy",
    "reprocessrequests": "ReprocessRequest",
}


def create_object(
    objects: Any,
    namespace: str,
    plural: str,
    name: str,
    spec: dict[str, Any],
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Creates one of the project's objects from its manifest, as a user would."""
    metadata: dict[str, Any] = {"name": name}
    if annotations:
        metadata["annotations"] = annotations
    return objects.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        plural,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KINDS[plural],
            "metadata": metadata,
            "spec": spec,
        },
    )


def get_object(objects: Any, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
    """The object as the API server holds it; None when there is none."""
    try:
        return objects.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    """The status condition of ``type_`` of an object ({} when it has none)."""
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_), {})


def dead_letter(
    topic: str, n: int, error_code: str = "PROCESSING_FAILED", retry_count: int = 0
) -> bytes:
    """The value of a dead letter in the standard envelope: the ``n``-th failed event of
    ``topic``, as another service would write it (plain JSON, not the project's encoder)."""
    import json

    return json.dumps(
        {
            "originalTopic": topic,
            "originalPartition": 0,
            "originalOffset": str(n),
            "originalTimestamp": "2026-01-01T00:00:00.000Z",
            "event": {"n": n},
            "error": "boom",
            "errorCode": error_code,
            "consumerGroup": "svc",
            "processingTimestamp": "2026-01-01T00:00:00.000Z",
            "retryCount": retry_count,
            "metadata": {},
        }
    ).encode()


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 60.0,
    interval: float = 0.25,
    what: str = "condition",
) -> T:
    """Polls ``predicate`` until it returns something truthy; fails the test on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last value: {last!r}")


def read_all(bootstrap: str, topic: str) -> list:
    """Every record of ``topic`` up to its current end, with kafka-python (an independent
    client, so tests do not check the project's adapter with itself)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        records = []
        while any(consumer.position(p) < end[p] for p in partitions):
            for batch in consumer.poll(timeout_ms=1000).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def headers_of(record) -> dict[str, str]:
    return {key: (value or b"").decode() for key, value in record.headers or ()}


class AlertReceiver:
    """A real HTTP server on loopback that records webhook calls (as an alert sink would
    receive them) and can be told to fail with a status code, or to go away."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.calls: list[tuple[str, object]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.calls.append((self.path, json.loads(body)))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server_class = ThreadingHTTPServer
        self._handler = Handler
        self._threading = threading
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._serve()

    def _serve(self) -> None:
        self._threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        """The sink goes down: connections are refused."""
        self.server.shutdown()
        self.server.server_close()

    def start(self) -> None:
        self.server = self._server_class(("127.0.0.1", self.port), self._handler)
        self._serve()

    def received(self, path: str, namespace: str) -> list:
        """Payloads posted to ``path`` that concern DLQs of ``namespace``."""
        return [body for p, body in self.calls if p == path and namespace in repr(body)]
