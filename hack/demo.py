#!/usr/bin/env python3
"""`make demo`: dlq-operator doing its job end to end, on the local platform.

1. the platform (Kafka broker + kube-apiserver) comes up, the CRDs are applied;
2. the operator starts, with a stand-in kubelet that runs retry-worker Deployments locally;
3. a basic DLQ and a DLQ with a RetryPolicy are applied: topics and a worker appear;
4. a sample application fails on some events: one is retried and then succeeds, one
   exhausts its retries, one is not retryable; both of the latter are parked;
5. the figures, alerts and Events show it; dlq-admin lists and shows the dead letters;
6. a ReprocessRequest replays the parked ones; the queue is back to OK.

The platform keeps running afterwards (`make platform-down` stops it); the operator, the
stand-in kubelet and the sample application are stopped at the end.
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

import local_platform  # noqa: E402

NAMESPACE = "demo"


def step(text: str) -> None:
    print(f"\n\033[1;36m==> {text}\033[0m", flush=True)


def wait(what: str, check: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise SystemExit(f"demo: timed out waiting for {what}")


class Demo:
    def __init__(self) -> None:
        self.platform = local_platform.Platform()
        self.env: dict[str, str] = {}
        self.children: list[subprocess.Popen] = []

    def kubectl(self, *args: str, capture: bool = False, check: bool = True) -> str:
        cmd = [f"{self.env['DLQ_TOOLS_BIN']}/kubectl", *args]
        result = subprocess.run(cmd, env=self.env, check=check, text=True, capture_output=capture)
        return result.stdout if capture else ""

    def dlq_admin(self, *args: str) -> None:
        subprocess.run([str(BIN / "dlq-admin"), *args], env=self.env, check=True)

    def spawn(self, name: str, cmd: list[str], **env: str) -> None:
        log = self.platform.logs / f"demo-{name}.log"
        out = log.open("ab")
        self.children.append(
            subprocess.Popen(cmd, env={**self.env, **env}, stdout=out, stderr=subprocess.STDOUT)
        )
        print(f"    {name} started (log: {log})")

    def produce(self, topic: str, *events: dict) -> None:
        lines = "".join(json.dumps(e) + "\n" for e in events)
        subprocess.run(
            ["kcat", "-b", self.env["KAFKA_BROKERS"], "-t", topic, "-P"],
            input=lines.encode(),
            check=True,
        )

    def count(self, topic: str) -> int:
        out = subprocess.run(
            ["kcat", "-b", self.env["KAFKA_BROKERS"], "-C", "-t", topic, "-e", "-q", "-f", "x\n"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.count("x")

    def create_topics(self, *names: str) -> None:
        """The application's own topics (the broker does not create topics on first use)."""
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic

        admin = KafkaAdminClient(bootstrap_servers=self.env["KAFKA_BROKERS"])
        existing = set(admin.list_topics())
        admin.create_topics([NewTopic(n, 3, 1) for n in names if n not in existing])
        admin.close()

    def start_app(self, *extra: str) -> None:
        self.spawn(
            "payments-app",
            [
                sys.executable,
                str(ROOT / "examples/04-sample-consumer/app.py"),
                "--topic",
                "payments",
                "--group",
                "payments-service",
                *extra,
            ],
        )

    def status(self, kind: str, name: str) -> dict:
        out = self.kubectl(
            "get", kind, name, "-n", NAMESPACE, "-o", "json", capture=True, check=False
        )
        return (json.loads(out).get("status") or {}) if out else {}

    def run(self) -> None:
        step(f"Local platform: Kafka broker + kube-apiserver ({self.platform.dir})")
        self.env = {**os.environ, **self.platform.up()}
        self.kubectl("version")
        self.kubectl("apply", "-f", str(ROOT / "crds"))
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        self.kubectl("create", "namespace", NAMESPACE, check=False, capture=True)

        step("Starting the operator and a stand-in kubelet for retry-worker Deployments")
        self.spawn(
            "operator",
            [str(BIN / "dlq-operator"), "run"],
            DLQ_MONITOR_INTERVAL_SECONDS="3",
            DLQ_HEALTH_PORT="0",
            DLQ_METRICS_PORT="0",
            DLQ_NAMESPACES=json.dumps([NAMESPACE]),
        )
        self.spawn("kubelet", [sys.executable, str(HACK / "local_kubelet.py")])

        step("A basic DLQ for 'orders', and a RetryPolicy + DLQ for 'payments'")
        self.create_topics("orders", "payments", "payments.processed")
        self.kubectl("apply", "-n", NAMESPACE, "-f", str(ROOT / "examples/01-basic-dlq"))
        self.kubectl("apply", "-n", NAMESPACE, "-f", str(ROOT / "examples/02-retry-policy"))
        wait(
            "both DLQs Ready",
            lambda: all(
                any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in self.status("dlq", name).get("conditions", [])
                )
                for name in ("orders", "payments")
            ),
        )
        self.kubectl("get", "dlq,rp,deploy", "-n", NAMESPACE)
        subprocess.run(
            ["kcat", "-b", self.env["KAFKA_BROKERS"], "-L"], check=True, stdout=subprocess.PIPE
        )

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
            "p-1 processed and two events parked",
            lambda: self.status("dlq", "payments").get("parked") == 2,
            timeout=120,
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
            check=True,
        )

        step("dlq-admin: the dead letters and the parked ones")
        self.dlq_admin("list", "payments.dlq")
        self.dlq_admin("list", "payments.dlq.parked")
        self.kubectl(
            "get",
            "events",
            "-n",
            NAMESPACE,
            "--field-selector",
            "involvedObject.name=payments",
            "--sort-by=.lastTimestamp",
        )

        step(
            "The bug is fixed (the application restarts with --fixed); a ReprocessRequest "
            "replays the parked payments"
        )
        app = self.children.pop()
        app.terminate()
        app.wait(timeout=30)
        self.start_app("--fixed")
        self.kubectl("apply", "-n", NAMESPACE, "-f", str(ROOT / "examples/03-reprocess"))
        wait(
            "the replay succeeded",
            lambda: self.status("rpr", "replay-parked-payments").get("phase") == "Succeeded",
        )
        self.kubectl("get", "rpr", "-n", NAMESPACE)
        wait(
            "the parked figure back to 0",
            lambda: self.status("dlq", "payments").get("parked") == 0,
            timeout=60,
        )
        wait("the replayed payments processed", lambda: self.count("payments.processed") == 3)
        self.dlq_admin("stats", "-n", NAMESPACE)

        step("Done. The platform keeps running; `make platform-down` stops it. Try:")
        for key in ("KUBECONFIG", "KAFKA_BROKERS"):
            print(f"    export {key}={self.env[key]}")
        print(f"    {self.env['DLQ_TOOLS_BIN']}/kubectl get dlq -n {NAMESPACE}")

    def stop(self) -> None:
        for child in reversed(self.children):
            child.terminate()
        for child in self.children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()


def main() -> int:
    demo = Demo()
    try:
        demo.run()
    finally:
        demo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
