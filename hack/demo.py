#!/usr/bin/env python3
"""`make demo`: the local platform up, and dlq-operator shown doing its job end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HACK = Path(__file__).resolve().parent
sys.path.insert(0, str(HACK))

import local_platform  # noqa: E402


def step(text: str) -> None:
    print(f"\n\033[1;36m==> {text}\033[0m", flush=True)


def main() -> int:
    platform = local_platform.Platform()
    step(f"Starting the local platform in {platform.dir} (Kafka broker + kube-apiserver)")
    env = platform.up()
    kubectl = [f"{env['DLQ_TOOLS_BIN']}/kubectl", "--kubeconfig", env["KUBECONFIG"]]

    step("The API server answers")
    subprocess.run([*kubectl, "version"], check=True)
    subprocess.run([*kubectl, "get", "namespaces"], check=True)

    step(f"The Kafka broker answers at {env['DLQ_KAFKA_BOOTSTRAP_SERVERS']}")
    subprocess.run(["kcat", "-b", env["DLQ_KAFKA_BOOTSTRAP_SERVERS"], "-L"], check=True)

    step("Done. The platform keeps running; `make platform-down` stops it.")
    for key, value in env.items():
        print(f"export {key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
