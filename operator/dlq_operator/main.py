"""The operator process: `dlq-operator run` (kopf) and `dlq-operator worker` (a retry worker).

This is the only module that registers kopf handlers; they live in
:mod:`dlq_operator.handlers`. Nothing is read from the environment at import: `run` reads
the project's settings (:func:`~dlq_operator.settings.get_settings`, named ``project``
here) and registers the handlers whose timing they set. ``settings`` is kopf's own
(:class:`kopf.OperatorSettings`), as kopf names it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import kopf
import typer
from prometheus_client import start_http_server

from dlq_operator import API_GROUP, API_VERSION, __version__
from dlq_operator.api import DEAD_LETTER_QUEUE, REPROCESS_REQUEST, RETRY_POLICY
from dlq_operator.api.naming import RECONCILE_TRIGGER_ANNOTATION
from dlq_operator.handlers import deadletterqueue as dlq_handlers
from dlq_operator.handlers import reprocessrequest as reprocess_handlers
from dlq_operator.handlers import retrypolicy as policy_handlers
from dlq_operator.handlers.session import pooled_session, watch_streams
from dlq_operator.kafka import TopicAdmin
from dlq_operator.kube import KubeClient
from dlq_operator.logs import configure_logging
from dlq_operator.metrics import process_registry
from dlq_operator.monitor.metrics import MonitorMetrics
from dlq_operator.monitor.service import DepthMonitor, monitor_clients
from dlq_operator.monitor.sinks import WebhookSinkConfig
from dlq_operator.reconcile.service import DlqReconciler
from dlq_operator.reconcile.workload import WORKER_COMPONENT
from dlq_operator.reprocess.controller import ReprocessController
from dlq_operator.reprocess.metrics import ReprocessMetrics
from dlq_operator.settings import Settings, get_settings
from dlq_operator.worker.process import run_worker

DLQ = (API_GROUP, API_VERSION, DEAD_LETTER_QUEUE.plural)
POLICY = (API_GROUP, API_VERSION, RETRY_POLICY.plural)
REPROCESS = (API_GROUP, API_VERSION, REPROCESS_REQUEST.plural)
WORKER_DEPLOYMENTS = ("apps", "v1", "deployments")
FINALIZER = f"{API_GROUP}/finalizer"
# How often the pods of a worker that does not serve yet are looked at (they say why).
WORKER_CHECK_SECONDS = 10
WORKER_LABELS = {
    "app.kubernetes.io/component": WORKER_COMPONENT,
    "app.kubernetes.io/managed-by": "dlq-operator",
}


@kopf.on.startup()
async def startup(
    settings: kopf.OperatorSettings, memo: kopf.Memo, dlq_bodies: kopf.Index, **_: Any
) -> None:
    """Connects the adapters once and configures kopf's bookkeeping under our own names."""
    project = get_settings()
    settings.persistence.finalizer = FINALIZER
    # In the status (status.operator.*), not in annotations: a handler's status patch and
    # kopf's bookkeeping then go out as one status write instead of two writes.
    settings.persistence.progress_storage = kopf.StatusProgressStorage(name="operator")
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(name="operator")
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    kube = KubeClient()

    async def nudge(plural: str, namespace: str, name: str, why: str) -> None:
        await asyncio.to_thread(
            kube.annotate, plural, namespace, name, {RECONCILE_TRIGGER_ANNOTATION: why}
        )

    admin = TopicAdmin(project.kafka)
    memo.kube = kube
    memo.nudge = nudge
    memo.reconciler = DlqReconciler(admin, kube, project)
    # The operator's metrics (the monitor's and the replays'), in the registry it serves.
    registry = process_registry()
    memo.reprocess = ReprocessController(kube, project, ReprocessMetrics(registry))
    if project.metrics_port:
        start_http_server(project.metrics_port, registry=registry)
    monitor_admin, monitor_reader = monitor_clients(project.kafka)
    monitor = DepthMonitor(
        monitor_admin,
        kube,
        [WebhookSinkConfig.model_validate(sink) for sink in project.alert_sinks],
        reader=monitor_reader,
        interval=project.monitor_interval_seconds,
        metrics=MonitorMetrics(registry),
        # kopf's live index of every DLQ: startup gets it already, filled as watches run.
        resources=lambda: [body for store in dlq_bodies.values() for body in store],
    )
    memo.monitor_task = asyncio.create_task(monitor.run(), name="depth-monitor")
    # What startup loaded lives as long as the process: frozen, full collections skip it
    # (README, "Differences from the original design").
    gc.collect()
    gc.freeze()


@kopf.on.login()
async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
    """kopf's own login (in-cluster or kubeconfig), through a bounded connection pool."""
    info = kopf.login_via_client(**kwargs)
    kinds = len((DLQ, POLICY, REPROCESS, WORKER_DEPLOYMENTS))
    namespaces = get_settings().namespaces
    return pooled_session(info, watch_streams(namespaces, kinds)) if info else None


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Stops the depth monitor with the operator."""
    memo.monitor_task.cancel()


def register_handlers(project: Settings) -> None:
    """Registers the handlers of the three kinds (and of the worker Deployments)."""
    # -- RetryPolicy -------------------------------------------------------------------------
    kopf.index(*POLICY, id="policy_specs")(policy_handlers.index_spec)
    kopf.on.resume(*POLICY)(
        kopf.on.create(*POLICY)(kopf.on.update(*POLICY, field="spec")(policy_handlers.changed))
    )
    kopf.on.delete(*POLICY, optional=True)(policy_handlers.deleted)
    kopf.timer(*POLICY, interval=10, idle=5)(policy_handlers.count_users)

    # -- DeadLetterQueue ---------------------------------------------------------------------
    kopf.index(*DLQ, id="topic_claims")(dlq_handlers.index_topic_claim)
    kopf.index(*DLQ, id="policy_users")(dlq_handlers.index_policy_user)
    kopf.on.resume(*DLQ, when=dlq_handlers.not_paused)(
        kopf.on.create(*DLQ, when=dlq_handlers.not_paused)(
            kopf.on.update(*DLQ, when=dlq_handlers.not_paused)(dlq_handlers.reconcile)
        )
    )
    kopf.timer(
        *DLQ,
        interval=project.resync_interval_seconds,
        idle=project.resync_interval_seconds,
        when=dlq_handlers.not_paused,
        id="resync",
    )(dlq_handlers.reconcile)
    kopf.timer(
        *DLQ, interval=WORKER_CHECK_SECONDS, when=dlq_handlers.worker_pending, id="worker-check"
    )(dlq_handlers.reconcile)
    kopf.on.delete(*DLQ)(dlq_handlers.finalize)
    # Watched, never written (event handlers keep no state in the objects they see).
    kopf.on.event(*WORKER_DEPLOYMENTS, labels=WORKER_LABELS)(dlq_handlers.worker_changed)
    kopf.index(*DLQ, id="dlq_bodies")(dlq_handlers.index_body)

    # -- ReprocessRequest ---------------------------------------------------------------------
    # Deleting a request stops its daemon between two batches; nothing to clean up after it.
    kopf.daemon(*REPROCESS, cancellation_timeout=30, initial_delay=0)(reprocess_handlers.replay)
    # Watched, never written: what wakes a waiting request or stops a replay, instead of polls.
    kopf.on.event(*REPROCESS, field="spec.suspend", value=True)(reprocess_handlers.suspended)
    kopf.on.event(*DLQ, when=reprocess_handlers.queue_awaited)(reprocess_handlers.queue_changed)


cli = typer.Typer(
    help="dlq-operator: dead-letter queues for Apache Kafka on Kubernetes.", no_args_is_help=True
)


@cli.command()
def run(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    """Run the operator (watches DeadLetterQueue, RetryPolicy and ReprocessRequest)."""
    configure_logging(verbose)
    project = get_settings()
    register_handlers(project)
    namespaces = project.namespaces
    liveness = f"http://0.0.0.0:{project.health_port}/healthz" if project.health_port else None
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness,
    )


@cli.command()
def worker(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    """Run a retry worker (configured by DLQ_WORKER_* and DLQ_KAFKA_* variables)."""
    configure_logging(verbose)
    run_worker()


@cli.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)
