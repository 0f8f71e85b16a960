#!/usr/bin/env python3
"""`make demo`: dlq-operator doing its job end to end, as users run it.

1. the local platform comes up: a Kafka broker and a one-node Kubernetes cluster;
2. the operator image is built from the Dockerfile and loaded into the node;
3. the chart is installed with helm: the operator runs as a pod and becomes Ready;
4. a basic DLQ and a DLQ with a RetryPolicy are applied: topics and a worker pod appear;
5. a sample application fails on some events: one is retried by the worker pod and then
   succeeds, one exhausts its retries, one is not retryable; both of the latter are parked;
6. the figures, the alert and its Events show it; dlq-admin lists the dead letters;
7. a ReprocessRequest replays the parked ones; the queue is back to OK.

Every step is checked; a failed one ends the demo with a message and a non-zero exit. It
can run again at once: it starts from a fresh ``demo`` namespace and fresh topics. The
platform and the release keep running afterwards (`make platform-down` stops them); the
sample application is stopped at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HACK = Path(__file__).resolve().parent
ROOT = HACK.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HACK))

import image  # noqa: E402
import local_platform  # noqa: E402

NAMESPACE = "demo"
RELEASE, RELEASE_NAMESPACE = "dlq", "dlq-system"
# Topics of the demo's applications and the DLQs it applies; deleted before each run.
TOPICS = [
    f"{source}{suffix}"
    for source in ("orders", "payments")
    for suffix in ("", ".dlq", ".dlq.parked")
] + ["payments.processed"]


class DemoFailed(Exception):
    """A step did not do what it shows; the message says which and why."""


def step(text: str) -> None:
    print(f"\n\033[1;36m==> {text}\033[0m", flush=True)


def wait(what: str, check: Callable[[], object], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            print(f"    ok: {what}")
            return
        time.sleep(1)
    raise DemoFailed(f"timed out after {timeout:.0f}s waiting for {what}")


class Demo:
    def __init__(self) -> None:
        self.platform = local_platform.Platform()
        self.env: dict[str, str] = {}
        self.children: list[subprocess.Popen] = []

    # -- tools -------------------------------------------------------------------------
    def run_tool(self, cmd: list[str], capture: bool, check: bool) -> str:
        result = subprocess.run(cmd, env=self.env, text=True, capture_output=capture)
        if check and result.returncode:
            detail = (result.stderr or "").strip() if capture else "see its output above"
            raise DemoFailed(f"'{' '.join(cmd)}' failed: {detail}")
        return result.stdout if capture else ""

    def kubectl(self, *args: str, capture: bool = False, check: bool = True) -> str:
        return self.run_tool([f"{self.env['DLQ_TOOLS_BIN']}/kubectl", *args], capture, check)

    def helm(self, *args: str) -> str:
        return self.run_tool([f"{self.env['DLQ_TOOLS_BIN']}/helm", *args], True, True)

    def dlq_admin(self, *args: str) -> None:
        self.run_tool([str(BIN / "dlq-admin"), *args], False, True)

    def get(self, kind: str, name: str, namespace: str = NAMESPACE) -> dict:
        out = self.kubectl(
            "get", kind, name, "-n", namespace, "-o", "json", capture=True, check=False
        )
        return json.loads(out) if out else {}

    def status(self, kind: str, name: str) -> dict:
        return self.get(kind, name).get("status") or {}

    def condition(self, kind: str, name: str, type_: str) -> dict:
        conditions = self.status(kind, name).get("conditions") or []
        return next((c for c in conditions if c["type"] == type_), {})

    def ready_pods(self, namespace: str, selector: str) -> list[str]:
        pods = json.loads(
            self.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json", capture=True)
        )["items"]
        return [
            p["metadata"]["name"]
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p.get("status", {}).get("conditions", [])
            )
        ]

    # -- Kafka ---------------------------------------------------------------------------
    def produce(self, topic: str, *events: dict) -> None:
        lines = "".join(json.dumps(e) + "\n" for e in events)
        result = subprocess.run(
            ["kcat", "-b", self.env["KAFKA_BROKERS"], "-t", topic, "-P"], input=lines.encode()
        )
        if result.returncode:
            raise DemoFailed(f"kcat could not produce to {topic}")

    def count(self, topic: str) -> int:
        out = subprocess.run(
            ["kcat", "-b", self.env["KAFKA_BROKERS"], "-C", "-t", topic, "-e", "-q", "-f", "x\n"],
            capture_output=True,
            text=True,
        )
        return out.stdout.count("x")

    def fresh_topics(self) -> None:
        """Deletes what an earlier run left, then creates the applications' own topics (the
        broker does not create topics on first use)."""
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic

        admin = KafkaAdminClient(bootstrap_servers=self.env["KAFKA_BROKERS"])
        try:
            left = [t for t in TOPICS if t in set(admin.list_topics())]
            if left:
                admin.delete_topics(left)
                wait(
                    "the previous run's topics deleted",
                    lambda: not set(left) & set(admin.list_topics()),
                    timeout=60,
                )
            admin.create_topics(
                [NewTopic(n, 3, 1) for n in ("orders", "payments", "payments.processed")]
            )
        finally:
            admin.close()

    # -- the application -------------------------------------------------------------------
    def start_app(self, *extra: str) -> None:
        log = self.platform.logs / "demo-payments-app.log"
        out = log.open("ab")
        self.children.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "examples/04-sample-consumer/app.py"),
                    "--topic",
                    "payments",
                    "--group",
                    "payments-service",
                    *extra,
                ],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        )
        print(f"    payments-app started {' '.join(extra)} (log: {log})")

    def stop_app(self) -> None:
        for child in self.children:
            child.terminate()
        for child in self.children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        self.children.clear()

    # -- the story ---------------------------------------------------------------------------
    def run(self) -> None:
        step("Local platform: a Kafka broker and a one-node Kubernetes cluster")
        self.env = {**os.environ, **self.platform.up()}
        self.kubectl("get", "nodes", "-o", "wide")

        step("The operator image, built from the Dockerfile and loaded into the node")
        ref, archive = image.build_image()
        self.platform.load_image(archive)
        print(f"    {ref}")

        step(f"helm install: the operator as a pod in {RELEASE_NAMESPACE}")
        repository, _, tag = ref.rpartition(":")
        self.helm(
            "upgrade",
            "--install",
            RELEASE,
            str(ROOT / "charts/dlq-operator"),
            "--namespace",
            RELEASE_NAMESPACE,
            "--create-namespace",
            f"--set=image.repository={repository}",
            f"--set=image.tag={tag}",
            f"--set=kafka.bootstrapServers={self.env['DLQ_POD_KAFKA_BOOTSTRAP_SERVERS']}",
            # Quick depth checks, so the alert shows within seconds.
            "--set=monitor.intervalSeconds=3",
        )
        selector = "app.kubernetes.io/component=operator"
        wait(
            "the operator pod Ready",
            lambda: self.ready_pods(RELEASE_NAMESPACE, selector),
            timeout=180,
        )
        self.kubectl("get", "pods", "-n", RELEASE_NAMESPACE, "-o", "wide")

        step(f"A fresh '{NAMESPACE}' namespace and fresh topics")
        self.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--timeout=120s")
        self.kubectl("create", "namespace", NAMESPACE)
        self.fresh_topics()

        step("A basic DLQ for 'orders', and a RetryPolicy + DLQ for 'payments'")
        self.kubectl("apply", "-n", NAMESPACE, "-f", str(ROOT / "examples/01-basic-dlq"))
        self.kubectl("apply", "-n", NAMESPACE, "-f", str(ROOT / "examples/02-retry-policy"))
        wait(
            "both DLQs Ready, the payments retry worker Available",
            lambda: all(
                self.condition("dlq", name, "Ready").get("status") == "True"
                for name in ("orders", "payments")
            ),
            timeout=180,
        )
        self.kubectl("get", "dlq,rp,deploy,pods", "-n", NAMESPACE)

        step("The sample application consumes 'payments' and fails on purpose")
        self.start_app()
        self.produce(
            "payments",
            {"id": "p-1", "amount": 10, "failTimes": 2},
            {"id": "p-2", "amount": 20, "alwaysFail": True},
            {"id": "p-3", "amount": -5, "alwaysFail": True, "errorCode": "VALIDATION"},
        )
        print("    p-1 fails twice then succeeds; p-2 always fails; p-3 fails VALIDATION")
        wait(
            "p-1 processed after two retries by the worker pod, two events parked",
            lambda: (
                self.status("dlq", "payments").get("parked") == 2
                and self.count("payments.processed") == 1
            ),
            timeout=180,
        )
        self.kubectl("get", "dlq", "-n", NAMESPACE)
        print("\n    payments.processed (what the application finally handled):")
        subprocess.run(
            [
                "kcat",
                "-b",
                self.env["KAFKA_BROKERS"],
                "-C",
                "-t",
                "payments.processed",
                "-e",
                "-q",
                "-f",
                "      %s  (headers: %h)\n",
            ],
            check=False,
        )

        step("The alert: two parked payments are above the warning threshold of 1")
        wait(
            "alert level Warning and a DepthWarning Event",
            lambda: (
                self.status("dlq", "payments").get("alertLevel") == "Warning"
                and "DepthWarning" in self.event_reasons("payments")
            ),
            timeout=60,
        )
        self.kubectl("get", "events", *self.events_of("payments"), "--sort-by=.lastTimestamp")

        step("dlq-admin: the dead letters and the parked ones")
        self.dlq_admin("list", "payments.dlq")
        self.dlq_admin("list", "payments.dlq.parked")

        step(
            "The bug is fixed (the application restarts with --fixed); a ReprocessRequest "
            "replays the parked payments"
        )
        self.stop_app()
        self.start_app("--fixed")
        self.kubectl("apply", "-n", NAMESPACE, "-f", str(ROOT / "examples/03-reprocess"))
        wait(
            "the replay Succeeded",
            lambda: self.status("rpr", "replay-parked-payments").get("phase") == "Succeeded",
        )
        self.kubectl("get", "rpr", "-n", NAMESPACE)
        wait(
            "nothing parked any more, the alert resolved",
            lambda: (
                self.status("dlq", "payments").get("parked") == 0
                and self.status("dlq", "payments").get("alertLevel") == "OK"
            ),
            timeout=90,
        )
        wait("all three payments processed", lambda: self.count("payments.processed") == 3)
        self.dlq_admin("stats", "-n", NAMESPACE)

        step("Done. The platform and the release keep running; `make platform-down` stops them.")
        for key in ("KUBECONFIG", "KAFKA_BROKERS"):
            print(f"    export {key}={self.env[key]}")
        print(f"    {self.env['DLQ_TOOLS_BIN']}/kubectl get dlq,pods -n {NAMESPACE}")

    @staticmethod
    def events_of(name: str) -> list[str]:
        """kubectl arguments that select the Events about one object of the demo."""
        return ["-n", NAMESPACE, "--field-selector", f"involvedObject.name={name}"]

    def event_reasons(self, name: str) -> set[str]:
        events = json.loads(
            self.kubectl("get", "events", *self.events_of(name), "-o", "json", capture=True)
        )["items"]
        return {event.get("reason") for event in events}


def main() -> int:
    demo = Demo()
    try:
        demo.run()
    except (DemoFailed, local_platform.PlatformError, image.ImageError) as exc:
        print(f"\ndemo: failed: {exc}", file=sys.stderr)
        return 1
    finally:
        demo.stop_app()
    return 0


if __name__ == "__main__":
    sys.exit(main())
