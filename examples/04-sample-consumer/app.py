#!/usr/bin/env python3
"""A sample consumer that fails on purpose, to watch dead-lettering and retries work.

Each event is a JSON object; these fields steer what happens to it:

- ``failTimes`` (int): fail while the record's ``x-retry-count`` is below it, then succeed;
- ``alwaysFail`` (bool): fail every time (ends parked once retries are exhausted);
- ``errorCode`` (str): the error code to fail with (default PROCESSING_FAILED).

With ``--fixed`` (the bug is fixed) every event succeeds, whatever it says.

Failed events go to ``<topic>.dlq`` through :class:`DlqPublisher`; processed ones are
written to ``<topic>.processed`` with the retry count they succeeded at, so a test or a
person can see the outcome. Offsets are committed only after either happened.

    python app.py --topic orders --group orders-service
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from kafka import KafkaConsumer, KafkaProducer

from dlq_operator.envelope import retry_count_from_headers
from dlq_operator.publisher import DlqPublisher
from dlq_operator.settings import KafkaSettings

log = logging.getLogger("sample-consumer")


class EventFailed(Exception):
    def __init__(self, message: str, error_code: str | None) -> None:
        super().__init__(message)
        self.error_code = error_code


def process(event: dict, record, fixed: bool) -> None:
    if fixed:
        return
    attempt = retry_count_from_headers(record.headers or ())
    if event.get("alwaysFail") or attempt < int(event.get("failTimes", 0)):
        raise EventFailed(
            f"event {event.get('id')} failed on attempt {attempt}", event.get("errorCode")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", default="sample-consumer")
    parser.add_argument("--fixed", action="store_true", help="succeed on every event")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    kafka = KafkaSettings()
    servers = kafka.bootstrap_servers.split(",")
    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=servers,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    results = KafkaProducer(bootstrap_servers=servers, acks="all")
    publisher = DlqPublisher(kafka, consumer_group=args.group, consumer_id="sample-1")

    def record_success(event: dict, record) -> None:
        process(event, record, args.fixed)
        attempt = str(retry_count_from_headers(record.headers or ())).encode()
        results.send(
            f"{args.topic}.processed",
            key=record.key,
            value=record.value,
            headers=[("x-retry-count", attempt)],
        ).get(timeout=30)

    handle = publisher.guard(
        record_success,
        metadata=lambda e: {"correlationId": str(e.get("id"))} if isinstance(e, dict) else {},
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("consuming %s as %s", args.topic, args.group)
    while not stop.is_set():
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                outcome = "processed" if handle(record) else "dead-lettered"
                log.info("%s offset %s: %s", record.topic, record.offset, outcome)
            consumer.commit()
    consumer.close(autocommit=False)
    results.close()
    publisher.close()


if __name__ == "__main__":
    main()
