"""`dlq-operator worker`: one retry worker process, as the worker Deployment runs it."""

from __future__ import annotations

import logging
import signal
import threading

from prometheus_client import start_http_server

from dlq_operator.metrics import process_registry
from dlq_operator.settings import KafkaSettings, WorkerSettings
from dlq_operator.worker.health import serve_health
from dlq_operator.worker.metrics import WorkerMetrics
from dlq_operator.worker.runner import RetryWorker

log = logging.getLogger(__name__)


def run_worker() -> None:
    """Runs until SIGTERM or SIGINT, then finishes in-flight sends, commits and exits."""
    settings = WorkerSettings()
    registry = process_registry()
    worker = RetryWorker(settings, KafkaSettings(), metrics=WorkerMetrics(registry))
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=registry)
    probes = (
        serve_health(settings.health_port, worker.alive, worker.ready)
        if settings.health_port
        else None
    )
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info(
            "%s received: finishing in-flight sends, then exiting", signal.Signals(signum).name
        )
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        worker.run(stop)
    finally:
        if probes is not None:
            probes.shutdown()
