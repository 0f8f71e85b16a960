#!/usr/bin/env python3
"""Runs the retry-worker Deployments of the local platform as local processes.

The local control plane has no kubelet, so Deployments never get pods. This stands in for
one, for the demo and the end-to-end tests only: it watches Deployments labelled
``app.kubernetes.io/component=retry-worker`` and keeps one ``dlq-operator worker`` process
per Deployment with replicas > 0, started with the pod template's environment (the
operator's configuration is what is being run). A changed template hash restarts it, a
deleted Deployment stops it, exactly as a rollout would.

    python hack/local_kubelet.py      (KUBECONFIG from the platform environment)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from kubernetes import client, config, watch

SELECTOR = "app.kubernetes.io/component=retry-worker"
HASH_ANNOTATION = "dlq.orion.io/config-hash"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pod_environment(deployment: client.V1Deployment) -> dict[str, str]:
    """The worker container's environment, with probe and metrics ports made free here."""
    container = deployment.spec.template.spec.containers[0]
    env = {item.name: item.value for item in container.env or [] if item.value is not None}
    env["DLQ_WORKER_HEALTH_PORT"] = str(free_port())
    env["DLQ_WORKER_METRICS_PORT"] = str(free_port())
    return env


class LocalKubelet:
    """Keeps one local worker process per retry-worker Deployment."""

    def __init__(self, api: client.ApiClient, log_dir: Path, namespace: str | None = None) -> None:
        self.apps = client.AppsV1Api(api)
        self.log_dir = log_dir
        self.namespace = namespace
        self.running: dict[tuple[str, str], tuple[str, subprocess.Popen, dict[str, str]]] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        stream = watch.Watch()
        while not self.stopped.is_set():
            lister = (
                self.apps.list_namespaced_deployment
                if self.namespace
                else self.apps.list_deployment_for_all_namespaces
            )
            args = (self.namespace,) if self.namespace else ()
            for event in stream.stream(lister, *args, label_selector=SELECTOR, timeout_seconds=5):
                self.apply(event["type"], event["object"])
                if self.stopped.is_set():
                    break

    def apply(self, kind: str, deployment: client.V1Deployment) -> None:
        key = (deployment.metadata.namespace, deployment.metadata.name)
        annotations = deployment.spec.template.metadata.annotations or {}
        digest = annotations.get(HASH_ANNOTATION, "")
        current = self.running.get(key)
        wanted = kind != "DELETED" and (deployment.spec.replicas or 0) > 0
        if current and (not wanted or current[0] != digest):
            self.stop(key)
            current = None
        if wanted and current is None:
            env = pod_environment(deployment)
            log = (self.log_dir / f"{key[0]}-{key[1]}.log").open("ab")
            proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "dlq-operator"), "worker"],
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            self.running[key] = (digest, proc, env)

    def stop(self, key: tuple[str, str]) -> None:
        _, proc, _ = self.running.pop(key)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)

    def shutdown(self) -> None:
        self.stopped.set()
        for key in list(self.running):
            self.stop(key)


def main() -> None:
    config.load_kube_config()
    kubelet = LocalKubelet(client.ApiClient(), Path(os.environ.get("DLQ_PLATFORM_DIR", ".")))
    signal.signal(signal.SIGTERM, lambda *_: kubelet.stopped.set())
    try:
        kubelet.run()
    except KeyboardInterrupt:
        pass
    finally:
        kubelet.shutdown()


if __name__ == "__main__":
    main()
