#!/usr/bin/env python3
"""The local platform: a real Kafka broker and a real Kubernetes control plane on 127.0.0.1.

    python hack/local_platform.py up        build missing tools, start everything, wait until ready
    python hack/local_platform.py down      stop everything and delete its data
    python hack/local_platform.py status    what runs, on which port, with how much memory
    python hack/local_platform.py env       shell lines to export KUBECONFIG and the Kafka servers
    python hack/local_platform.py stop kafka|start kafka   (for outage tests and demos)

    python hack/local_platform.py load-image ARCHIVE   (an OCI archive into the node)

Components: a one-node Kubernetes cluster (etcd, kube-apiserver with RBAC and a
client-certificate admin, kube-controller-manager, kube-scheduler, and the node:
containerd, the kubelet and kube-proxy, see ``local_node``) and one Apache Kafka node in
KRaft combined mode, which listens on 127.0.0.1 and on the pods' bridge. Ports are picked
free on every `up`. Each platform keeps its state in its own directory
(``DLQ_PLATFORM_DIR``, default ``~/.cache/dlq-operator/platform``); the node is
machine-wide, so starting a platform brings down the one that runs elsewhere.

Runs as root (the node sets up cgroups, mounts, a bridge and iptables rules). Only the
standard library and the ``openssl`` and ``ip`` commands are used here, plus kafka-python
for the broker readiness check, so the script runs before the project is installed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import local_node
from local_node import NODE_NAME, Network

HACK = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("DLQ_CACHE_DIR", Path.home() / ".cache" / "dlq-operator"))
DEFAULT_STATE = CACHE / "platform"
# Which platform's node runs on this machine (there is room for one).
NODE_OWNER = CACHE / "node-owner"
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "containerd",
    "kubelet",
    "kube-proxy",
    "kafka",
)
PORTS = (
    "etcd",
    "etcd-peer",
    "apiserver",
    "controller-manager",
    "scheduler",
    "kubelet",
    "kubelet-healthz",
    "proxy-healthz",
    "proxy-metrics",
    "kafka",
    "kafka-pods",
    "controller",
)
READY_TIMEOUT = 120.0


class PlatformError(RuntimeError):
    """A component could not be built or started; the message names the command and log."""


@dataclass(frozen=True)
class Tools:
    bin_dir: Path
    kafka_libs: Path
    pause_archive: Path
    pause_image: str

    @classmethod
    def locate(cls) -> Tools:
        out = subprocess.run(
            ["bash", str(HACK / "build-tools.sh"), "--print-paths"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        paths = dict(line.split("=", 1) for line in out.split())
        return cls(
            Path(paths["BIN_DIR"]),
            Path(paths["KAFKA_LIBS"]),
            Path(paths["PAUSE_ARCHIVE"]),
            paths["PAUSE_IMAGE"],
        )

    def build(self) -> None:
        """Builds whatever is missing (cached; a second call is a no-op)."""
        result = subprocess.run(["bash", str(HACK / "build-tools.sh")])
        if result.returncode != 0:
            raise PlatformError("building the platform tools failed (see the log named above)")


class Platform:
    """One platform instance, rooted at a state directory."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.dir = Path(state_dir or os.environ.get("DLQ_PLATFORM_DIR", DEFAULT_STATE)).resolve()
        self.logs = self.dir / "logs"
        self.pki = self.dir / "pki"
        self.state_file = self.dir / "state.json"

    # -- state -----------------------------------------------------------------
    def state(self) -> dict:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def _save(self, state: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(state, indent=2))

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    def environment(self) -> dict[str, str]:
        state = self.state()
        if not state:
            raise PlatformError(f"no platform in {self.dir}: run 'up' first")
        bootstrap = f"127.0.0.1:{state['ports']['kafka']}"
        pods_bootstrap = f"{self.network.gateway}:{state['ports']['kafka-pods']}"
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "DLQ_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_BROKERS": bootstrap,
            # Where pods reach the broker (the host reaches it there too).
            "DLQ_POD_KAFKA_BOOTSTRAP_SERVERS": pods_bootstrap,
            "DLQ_NODE_NAME": NODE_NAME,
            "CONTAINERD_ADDRESS": str(self.containerd_socket),
            "DLQ_PLATFORM_DIR": str(self.dir),
            "DLQ_TOOLS_BIN": state["bin_dir"],
        }

    @property
    def network(self) -> Network:
        return Network(**self.state()["network"])

    @property
    def containerd_socket(self) -> Path:
        return self.dir / "containerd" / "containerd.sock"

    def load_image(self, archive: Path) -> None:
        """Imports an OCI archive into the node's containerd, under the name it carries."""
        self._ctr("images", "import", "--digests", str(archive))

    def _ctr(self, *args: str) -> str:
        cmd = ["ctr", "--address", str(self.containerd_socket), "--namespace", "k8s.io", *args]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode:
            raise PlatformError(f"'{' '.join(cmd)}' failed: {result.stderr.strip()}")
        return result.stdout

    # -- lifecycle -------------------------------------------------------------
    def up(self, build: bool = True) -> dict[str, str]:
        tools = Tools.locate()
        if build:
            tools.build()
        state = self.state()
        if state and all(self._alive(state, c) for c in COMPONENTS):
            return self.environment()
        if state:
            self.down()
        self._take_over_the_node(tools)
        self.logs.mkdir(parents=True, exist_ok=True)
        ports = {name: free_port() for name in PORTS}
        network = local_node.pick_network()
        state = {
            "ports": ports,
            "pids": {},
            "network": {"pod_cidr": network.pod_cidr, "service_cidr": network.service_cidr},
            "bin_dir": str(tools.bin_dir),
            "kafka_libs": str(tools.kafka_libs),
        }
        self._save(state)
        NODE_OWNER.write_text(str(self.dir))
        try:
            local_node.create_bridge(network)
            self._make_pki(network)
            self._start_etcd(state)
            self._start_apiserver(state)
            self._write_kubeconfig(ports["apiserver"])
            self._start_control_plane(state)
            self._start_node(state, tools)
            self._start_kafka(state, format_storage=True)
            self._wait("kubelet", self._node_ready, what="the node Ready and schedulable")
            self._wait(
                "kube-controller-manager",
                lambda: self._api_ok("/api/v1/namespaces/default/serviceaccounts/default"),
                what="the default ServiceAccount",
            )
        except BaseException:
            self.down()
            raise
        return self.environment()

    def down(self) -> None:
        state = self.state()
        for component in reversed(COMPONENTS):
            self._stop(state, component)
            if component == "containerd":
                local_node.reset_machine(Path(state.get("bin_dir", "")) / "kube-proxy")
                local_node.unmount_under(self.dir)
        if NODE_OWNER.exists() and NODE_OWNER.read_text() == str(self.dir):
            NODE_OWNER.unlink()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _take_over_the_node(self, tools: Tools) -> None:
        """One node per machine: a platform elsewhere that still runs is brought down,
        and whatever a crashed one left is cleared."""
        owner = Path(NODE_OWNER.read_text()) if NODE_OWNER.exists() else None
        if owner and owner != self.dir and (owner / "state.json").exists():
            print(
                f"local-platform: stopping the platform in {owner} (one node per machine)",
                file=sys.stderr,
            )
            Platform(owner).down()
        local_node.reset_machine(tools.bin_dir / "kube-proxy")

    def stop(self, component: str) -> None:
        state = self.state()
        self._stop(state, component)
        state["pids"].pop(component, None)
        self._save(state)

    def start(self, component: str) -> None:
        if component != "kafka":
            raise PlatformError("only kafka can be restarted on its own")
        state = self.state()
        if not self._alive(state, "kafka"):
            self._start_kafka(state, format_storage=False)

    def status(self) -> dict[str, dict]:
        state = self.state()
        report = {}
        for component in COMPONENTS:
            pid = state.get("pids", {}).get(component)
            alive = self._alive(state, component)
            report[component] = {"running": alive, "pid": pid, **(memory_of(pid) if alive else {})}
        return report

    # -- components ------------------------------------------------------------
    def _make_pki(self, network: Network) -> None:
        self.pki.mkdir(parents=True, exist_ok=True)
        ssl_run = self._openssl
        ssl_run(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            "/CN=dlq-local-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        )
        self.issue_cert(
            "apiserver",
            "/CN=kube-apiserver",
            san="DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
            f"IP:127.0.0.1,IP:{network.gateway},IP:{network.kubernetes_service_ip}",
            server=True,
        )
        self.issue_cert("admin", "/O=system:masters/CN=admin")
        # The API server's identity towards the kubelet (logs, exec, port-forward).
        self.issue_cert(
            "apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client"
        )
        self.issue_cert("kube-controller-manager", "/CN=system:kube-controller-manager")
        self.issue_cert("kube-scheduler", "/CN=system:kube-scheduler")
        self.issue_cert("kube-proxy", "/CN=system:kube-proxy")
        self.issue_cert("kubelet", f"/O=system:nodes/CN=system:node:{NODE_NAME}")
        self.issue_cert(
            "kubelet-serving", f"/CN={NODE_NAME}", san=f"IP:{network.gateway}", server=True
        )
        ssl_run("genrsa", "-out", "sa.key", "2048")
        ssl_run("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")

    def issue_cert(
        self, name: str, subject: str, san: str | None = None, server: bool = False
    ) -> tuple[Path, Path]:
        """Issues a certificate from the platform CA; the subject's O= are Kubernetes groups."""
        ext = self.pki / f"{name}.ext"
        usage = "serverAuth" if server else "clientAuth"
        ext.write_text(
            f"basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage={usage}\n" + (f"subjectAltName={san}\n" if san else "")
        )
        self._openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
        )
        self._openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            ext.name,
            "-out",
            f"{name}.crt",
        )
        return self.pki / f"{name}.crt", self.pki / f"{name}.key"

    def _openssl(self, *args: str) -> None:
        result = subprocess.run(["openssl", *args], cwd=self.pki, capture_output=True, text=True)
        if result.returncode != 0:
            raise PlatformError(f"openssl {' '.join(args)} failed: {result.stderr.strip()}")

    def _start_etcd(self, state: dict) -> None:
        ports = state["ports"]
        client, peer = f"http://127.0.0.1:{ports['etcd']}", f"http://127.0.0.1:{ports['etcd-peer']}"
        self._spawn(
            state,
            "etcd",
            [
                f"{state['bin_dir']}/etcd",
                "--name",
                "default",
                "--data-dir",
                str(self.dir / "etcd"),
                "--listen-client-urls",
                client,
                "--advertise-client-urls",
                client,
                "--listen-peer-urls",
                peer,
                "--initial-advertise-peer-urls",
                peer,
                "--initial-cluster",
                f"default={peer}",
                "--unsafe-no-fsync",
                "--quota-backend-bytes",
                str(2 * 1024**3),
            ],
        )
        self._wait("etcd", lambda: http_ok(f"{client}/health", expect=b'"health":"true"'))

    def _start_apiserver(self, state: dict) -> None:
        ports, pki = state["ports"], self.pki
        self._spawn(
            state,
            "kube-apiserver",
            [
                f"{state['bin_dir']}/kube-apiserver",
                f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
                # Pods reach it here, as the kubernetes Service's endpoint; so does the host.
                f"--bind-address={self.network.gateway}",
                f"--advertise-address={self.network.gateway}",
                f"--secure-port={ports['apiserver']}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-cluster-ip-range={self.network.service_cidr}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                # The node's name does not resolve; its address does.
                "--kubelet-preferred-address-types=InternalIP",
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--v=1",
            ],
        )
        ctx = self._admin_ssl_context()
        url = f"https://{self.network.gateway}:{ports['apiserver']}/readyz"
        self._wait("kube-apiserver", lambda: http_ok(url, expect=b"ok", context=ctx))

    def _admin_ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def _write_kubeconfig(self, port: int) -> None:
        self.write_kubeconfig(self.kubeconfig, "admin", port)

    def write_kubeconfig(self, path: Path, user: str, port: int | None = None) -> Path:
        """Writes a kubeconfig for a user whose certificate is in the platform's pki/."""
        port = port or self.state()["ports"]["apiserver"]
        b64 = lambda p: base64.b64encode(p.read_bytes()).decode()  # noqa: E731
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "dlq-local",
            "clusters": [
                {
                    "name": "dlq-local",
                    "cluster": {
                        "server": f"https://{self.network.gateway}:{port}",
                        "certificate-authority-data": b64(self.pki / "ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate-data": b64(self.pki / f"{user}.crt"),
                        "client-key-data": b64(self.pki / f"{user}.key"),
                    },
                }
            ],
            "contexts": [{"name": "dlq-local", "context": {"cluster": "dlq-local", "user": user}}],
        }
        path.write_text(json.dumps(config, indent=2))
        return path

    def _start_control_plane(self, state: dict) -> None:
        """kube-controller-manager (Deployments, ReplicaSets, Jobs, garbage collection,
        namespace finalization, ServiceAccounts and their tokens) and kube-scheduler."""
        ports, pki, bin_dir = state["ports"], self.pki, state["bin_dir"]
        self._spawn(
            state,
            "kube-controller-manager",
            [
                f"{bin_dir}/kube-controller-manager",
                f"--kubeconfig={self._component_kubeconfig('kube-controller-manager')}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports['controller-manager']}",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                f"--service-cluster-ip-range={self.network.service_cidr}",
                "--v=1",
            ],
        )
        self._spawn(
            state,
            "kube-scheduler",
            [
                f"{bin_dir}/kube-scheduler",
                f"--kubeconfig={self._component_kubeconfig('kube-scheduler')}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports['scheduler']}",
                "--leader-elect=false",
                "--v=1",
            ],
        )

    def _start_node(self, state: dict, tools: Tools) -> None:
        """containerd (with the local pause image), the kubelet and kube-proxy."""
        ports, bin_dir, network = state["ports"], state["bin_dir"], self.network
        root = self.containerd_socket.parent
        cni_conf, node_dir = self.dir / "cni" / "net.d", self.dir / "node"
        for directory in (root, cni_conf, node_dir):
            directory.mkdir(parents=True, exist_ok=True)
        config = root / "config.toml"
        config.write_text(local_node.containerd_config(root, tools.pause_image, cni_conf))
        (cni_conf / "10-dlq-pods.conflist").write_text(
            local_node.cni_conflist(network, self.dir / "cni" / "ipam")
        )
        self._spawn(state, "containerd", ["containerd", "--config", str(config)])
        self._wait("containerd", lambda: self._ctr_ok("version"), what="containerd's socket")
        self.load_image(tools.pause_archive)

        kubelet_config = node_dir / "kubelet.json"
        kubelet_config.write_text(
            local_node.kubelet_config(
                network,
                self.pki,
                self.containerd_socket,
                ports["kubelet"],
                ports["kubelet-healthz"],
            )
        )
        self._spawn(
            state,
            "kubelet",
            [
                f"{bin_dir}/kubelet",
                f"--config={kubelet_config}",
                f"--kubeconfig={self._component_kubeconfig('kubelet')}",
                f"--root-dir={node_dir / 'kubelet'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={network.gateway}",
                "--v=1",
            ],
        )
        proxy_config = node_dir / "kube-proxy.json"
        proxy_config.write_text(
            local_node.kube_proxy_config(
                network,
                self._component_kubeconfig("kube-proxy"),
                ports["proxy-healthz"],
                ports["proxy-metrics"],
            )
        )
        self._spawn(
            state, "kube-proxy", [f"{bin_dir}/kube-proxy", f"--config={proxy_config}", "--v=1"]
        )

    def _component_kubeconfig(self, user: str) -> Path:
        return self.write_kubeconfig(self.dir / f"{user}.kubeconfig", user)

    def _ctr_ok(self, *args: str) -> bool:
        try:
            self._ctr(*args)
        except PlatformError:
            return False
        return True

    def _api_get(self, path: str) -> dict | None:
        url = f"https://{self.network.gateway}:{self.state()['ports']['apiserver']}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5, context=self._admin_ssl_context()) as r:
                return json.loads(r.read())
        except (OSError, ValueError):
            return None

    def _api_ok(self, path: str) -> bool:
        return self._api_get(path) is not None

    def _node_ready(self) -> bool:
        node = self._api_get(f"/api/v1/nodes/{NODE_NAME}") or {}
        conditions = (node.get("status") or {}).get("conditions") or []
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        return ready and not (node.get("spec") or {}).get("unschedulable")

    def _start_kafka(self, state: dict, format_storage: bool) -> None:
        ports = state["ports"]
        kafka_dir = self.dir / "kafka"
        kafka_dir.mkdir(parents=True, exist_ok=True)
        props = kafka_dir / "server.properties"
        props.write_text(
            KAFKA_PROPERTIES.format(
                node_id=1,
                broker=ports["kafka"],
                pods=ports["kafka-pods"],
                gateway=self.network.gateway,
                controller=ports["controller"],
                data=kafka_dir / "data",
            )
        )
        (kafka_dir / "log4j2.properties").write_text(
            KAFKA_LOG4J.format(log=self.logs / "kafka-server.log")
        )
        classpath = f"{state['kafka_libs']}/*"
        java = [
            "java",
            "-Xms256m",
            "-Xmx512m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={kafka_dir / 'log4j2.properties'}",
            "-cp",
            classpath,
        ]
        if format_storage:
            cluster_id = kafka_cluster_id()
            log = self.logs / "kafka-format.log"
            cmd = [
                *java,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(props),
                "--standalone",
            ]
            with log.open("w") as out:
                if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode:
                    raise PlatformError(
                        f"kafka storage format failed: {' '.join(cmd)} (log: {log})"
                    )
        self._spawn(state, "kafka", [*java, "kafka.Kafka", str(props)])
        self._wait("kafka", lambda: kafka_ready(f"127.0.0.1:{ports['kafka']}"))

    # -- processes -------------------------------------------------------------
    def _spawn(self, state: dict, component: str, cmd: list[str]) -> None:
        log = self.logs / f"{component}.log"
        with log.open("a") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        state["pids"][component] = proc.pid
        state.setdefault("commands", {})[component] = cmd
        self._save(state)

    def _wait(self, component: str, ready, what: str | None = None) -> None:
        state = self.state()
        log = self.logs / f"{component}.log"
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if not self._alive(state, component):
                raise PlatformError(
                    f"{component} exited during start-up: "
                    f"{' '.join(state['commands'][component])} (log: {log})\n{tail(log)}"
                )
            if ready():
                return
            time.sleep(0.25)
        raise PlatformError(
            f"{what or component} not ready after {READY_TIMEOUT:.0f}s: "
            f"{' '.join(state['commands'][component])} (log: {log})\n{tail(log)}"
        )

    def _alive(self, state: dict, component: str) -> bool:
        pid = state.get("pids", {}).get(component)
        if not pid:
            return False
        try:
            os.kill(pid, 0)
            status = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except (ProcessLookupError, FileNotFoundError):
            return False
        return status != "Z"

    def _stop(self, state: dict, component: str) -> None:
        pid = state.get("pids", {}).get(component)
        if not pid or not self._alive(state, component):
            return
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self._alive(state, component):
            reap(pid)
            time.sleep(0.1)
        if self._alive(state, component):
            os.killpg(pid, signal.SIGKILL)
            time.sleep(0.2)
        reap(pid)


KAFKA_PROPERTIES = """\
process.roles=broker,controller
node.id={node_id}
controller.quorum.bootstrap.servers=127.0.0.1:{controller}
listeners=PLAINTEXT://127.0.0.1:{broker},PODS://{gateway}:{pods},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{broker},PODS://{gateway}:{pods},CONTROLLER://127.0.0.1:{controller}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,PODS:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data}
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
log.segment.bytes=67108864
"""

KAFKA_LOG4J = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


def kafka_cluster_id() -> str:
    """A random cluster id as Kafka writes them: URL-safe base64 of a UUID, never starting
    with "-" (the storage tool would read it as an option), as Kafka's own Uuid avoids."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[:22]
        if not cluster_id.startswith("-"):
            return cluster_id


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_ok(url: str, expect: bytes, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return expect in response.read()
    except OSError:
        return False


def kafka_ready(bootstrap: str) -> bool:
    """Ready means a metadata request answers and lists this broker."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    except (KafkaError, OSError):
        return False
    try:
        return bool(admin.describe_cluster().get("brokers"))
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def memory_of(pid: int) -> dict[str, int]:
    """Resident and peak resident memory in MiB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[{"VmRSS": "rss_mib", "VmHWM": "peak_rss_mib"}[key]] = (
                int(value.split()[0]) // 1024
            )
    return fields


def reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "command",
        choices=["up", "down", "status", "env", "stop", "start", "build", "load-image"],
    )
    parser.add_argument(
        "component", nargs="?", help="kafka (stop, start) or an archive (load-image)"
    )
    args = parser.parse_args(argv)
    platform = Platform()
    try:
        if args.command == "build":
            Tools.locate().build()
        elif args.command == "up":
            started = time.monotonic()
            env = platform.up()
            print(
                f"platform up in {time.monotonic() - started:.1f}s ({platform.dir})",
                file=sys.stderr,
            )
            for key, value in env.items():
                print(f"  {key}={value}", file=sys.stderr)
        elif args.command == "down":
            platform.down()
        elif args.command == "status":
            print(json.dumps(platform.status(), indent=2))
        elif args.command == "env":
            for key, value in platform.environment().items():
                print(f"export {key}={value}")
        elif args.command == "load-image":
            if not args.component:
                parser.error("load-image needs the path of an OCI archive")
            platform.load_image(Path(args.component))
        elif args.command in ("stop", "start"):
            if not args.component:
                parser.error(f"{args.command} needs a component: {', '.join(COMPONENTS)}")
            getattr(platform, args.command)(args.component)
    except PlatformError as exc:
        print(f"local-platform: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
