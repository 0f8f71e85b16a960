#!/usr/bin/env python3
"""The local platform: a real Kafka broker and a real one-node Kubernetes cluster.

    python hack/local_platform.py up        build missing tools, start everything, wait until ready
    python hack/local_platform.py down      stop everything and delete its data
    python hack/local_platform.py status    what runs, on which port, with how much memory
    python hack/local_platform.py env       shell lines to export KUBECONFIG and the Kafka servers
    python hack/local_platform.py stop kafka|start kafka   (for outage tests and demos)
    python hack/local_platform.py load-image ARCHIVE       (an OCI archive into the node)
    python hack/local_platform.py kafka-user NAME          a SCRAM-SHA-512 user: its password
    python hack/local_platform.py kafka-cert NAME          a client certificate CN=NAME: its files

Components: etcd, kube-apiserver (RBAC and Node authorization, client-certificate admin),
kube-controller-manager, kube-scheduler, and one node: containerd (runc, the CNI bridge
plugin, a pause image built here), the kubelet and kube-proxy; and one Apache Kafka node in
KRaft combined mode. Pods run for real. Ports are picked free on every `up`. Each platform
keeps its state in its own directory (``DLQ_PLATFORM_DIR``, default
``~/.cache/dlq-operator/platform``).

The node is machine-wide (kube-proxy's iptables chains, the kubelet's cgroups, the pods'
bridge and network namespaces), so one runs at a time: ``up`` brings down a platform that
runs in another directory, and clears whatever a crashed one left. Pods live on a bridge
(``dlq0``) whose gateway address is the host's: the API server and a second Kafka listener
are there, so pods and host clients reach both. Nothing pods send leaves the machine.

Kafka also serves authenticated clients, with ACLs enforced (StandardAuthorizer): SASL_SSL
with SCRAM-SHA-512 users and mTLS (the principal is the client certificate's CN), both on
the gateway address with a server certificate of the platform CA. A SCRAM ``admin`` super
user is made at format time with a password new per platform. Its credentials, and those of
each mTLS client, are directories laid out as the operator reads a mounted Secret, which
only root reads. ``add_kafka_user``, ``kafka_client_cert`` and ``allow_kafka`` make tenants
for tests. The PLAINTEXT listeners are the platform's unauthenticated dev path (a super
user), which the tests of the operator itself use; a tenant never does.

What it takes on these machines (cgroup v1, root without CAP_SYS_RESOURCE, no registry):
containerd's CRI must not ask for a negative ``oom_score_adj`` (``restrict_oom_score_adj``;
without it every sandbox fails with runc's "can't get final child's PID from pipe: EOF"),
runc with the cgroupfs driver, a kubelet told that cgroup v1 is fine, and images loaded
from archives. The configuration files are templates in ``hack/node/``.

Runs as root. Only the standard library and the ``openssl``, ``ip``, ``iptables``, ``ctr``
and ``crictl`` commands are used here, plus kafka-python for the broker readiness check, so
the script runs before the project is installed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import string
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

HACK = Path(__file__).resolve().parent
TEMPLATES = HACK / "node"
CACHE = Path(os.environ.get("DLQ_CACHE_DIR", Path.home() / ".cache" / "dlq-operator"))
DEFAULT_STATE = CACHE / "platform"
# Which platform's node runs on this machine (there is room for one), with what the node
# changes machine-wide and `down` puts back.
NODE_OWNER = CACHE / "node-owner.json"
NODE_LOCK = CACHE / "node.lock"

NODE_NAME = "dlq-node"
BRIDGE = "dlq0"
CNI_NETWORK = "dlq-pods"
CNI_BIN_DIR = "/usr/lib/cni"
RUNC = "/usr/sbin/runc"
CGROUP_ROOT = Path("/sys/fs/cgroup")
KUBE_CGROUP = "kubepods"
CONTAINER_LOG_LINKS = Path("/var/log/containers")
CNI_CACHE = Path("/var/lib/cni")
# Candidate ranges, the first free one is taken: pods get a /24, Services a /24.
POD_RANGES = [f"10.{second}.{third}.0/24" for second in (244, 245, 246) for third in (0, 64, 128)]
SERVICE_RANGES = [f"10.{second}.0.0/24" for second in (96, 97, 98)]
# Set machine-wide by the kubelet (its kernel tunables) and the CNI bridge plugin
# (forwarding, for Service traffic between pods); put back by `down`.
NODE_SYSCTLS = (
    "net/ipv4/ip_forward",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
# iptables chains of kube-proxy and the kubelet (KUBE-), the CNI portmap plugin (CNI-) and
# the platform's own forwarding guard (DLQ-).
IPTABLES_PREFIXES = ("KUBE-", "CNI-", "DLQ-")
FORWARD_GUARD = "DLQ-FORWARD"

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
    "kafka-secure",
    "kafka-mtls",
    "controller",
)
# The port `status` shows for each component.
STATUS_PORTS = {
    "etcd": "etcd",
    "kube-apiserver": "apiserver",
    "kube-controller-manager": "controller-manager",
    "kube-scheduler": "scheduler",
    "kubelet": "kubelet",
    "kube-proxy": "proxy-healthz",
    "kafka": "kafka",
}
READY_TIMEOUT = 120.0
POD_CHECK = "dlq-node-check"
# Kafka's super user on the authenticated listeners (SCRAM, or a client certificate CN=admin).
KAFKA_ADMIN = "admin"
KAFKA_SCRAM = "SCRAM-SHA-512"


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


@dataclass(frozen=True)
class Network:
    pod_cidr: str
    service_cidr: str

    @property
    def gateway(self) -> str:
        """The host's address on the bridge: the node's InternalIP, where pods reach the
        API server and Kafka."""
        return str(next(ipaddress.ip_network(self.pod_cidr).hosts()))

    @property
    def kubernetes_service_ip(self) -> str:
        return str(next(ipaddress.ip_network(self.service_cidr).hosts()))


class Platform:
    """One platform instance, rooted at a state directory."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.dir = Path(state_dir or os.environ.get("DLQ_PLATFORM_DIR", DEFAULT_STATE)).resolve()
        self.logs = self.dir / "logs"
        self.pki = self.dir / "pki"
        self.state_file = self.dir / "state.json"
        self.node_dir = self.dir / "node"

    # -- state -----------------------------------------------------------------
    def state(self) -> dict:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def _save(self, state: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(state, indent=2))

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def network(self) -> Network:
        return Network(**self.state()["network"])

    @property
    def containerd_socket(self) -> Path:
        return self.node_dir / "containerd" / "containerd.sock"

    @property
    def kafka_admin_credentials(self) -> Path:
        """The SCRAM admin's credentials for the SASL_SSL listener (`_write_kafka_credentials`)."""
        return self._kafka_credentials(f"scram-{KAFKA_ADMIN}")

    def _kafka_credentials(self, name: str) -> Path:
        return self.dir / "kafka-credentials" / name

    def environment(self) -> dict[str, str]:
        state = self.state()
        if not state:
            raise PlatformError(f"no platform in {self.dir}: run 'up' first")
        ports, gateway = state["ports"], self.network.gateway
        bootstrap = f"127.0.0.1:{ports['kafka']}"
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "DLQ_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_BROKERS": bootstrap,
            # Where pods reach the broker (the host reaches it there too).
            "DLQ_POD_KAFKA_BOOTSTRAP_SERVERS": f"{gateway}:{ports['kafka-pods']}",
            # The authenticated listeners (pods and the host reach them), under prefixes of
            # their own so that processes given this environment stay on PLAINTEXT; with the
            # admin's credentials (a directory), KafkaSettings(_env_prefix="DLQ_SECURE_KAFKA_")
            # is the admin over SASL_SSL.
            "DLQ_SECURE_KAFKA_BOOTSTRAP_SERVERS": f"{gateway}:{ports['kafka-secure']}",
            "DLQ_SECURE_KAFKA_CREDENTIALS_DIR": str(self.kafka_admin_credentials),
            "DLQ_MTLS_KAFKA_BOOTSTRAP_SERVERS": f"{gateway}:{ports['kafka-mtls']}",
            "DLQ_NODE_NAME": NODE_NAME,
            "CONTAINERD_ADDRESS": str(self.containerd_socket),
            "DLQ_PLATFORM_DIR": str(self.dir),
            "DLQ_TOOLS_BIN": state["bin_dir"],
        }

    # -- lifecycle -------------------------------------------------------------
    def up(self, build: bool = True) -> dict[str, str]:
        tools = Tools.locate()
        if build:
            tools.build()
        with machine_lock():
            state = self.state()
            running = self._owns_node() and all(self._alive(state, c) for c in COMPONENTS)
            if running and self._current(state):
                return self.environment()
            if state or self.dir.exists():
                self.down()  # a failed or crashed run here: its processes may still run
            self._take_over_the_node()
            self._save({})  # the directory exists from here on: `down` clears it
            write_node_owner(
                {
                    "state_dir": str(self.dir),
                    "bin_dir": str(tools.bin_dir),
                    "sysctls": read_sysctls(NODE_SYSCTLS),
                }
            )
            try:
                self._start(tools)
            except BaseException:
                self.down(keep_logs=True)  # the error names a log: it stays
                raise
        return self.environment()

    def _start(self, tools: Tools) -> None:
        """Starts everything; slow starters (containerd, Kafka, the control plane) start
        side by side and are awaited where the next step needs them."""
        self.logs.mkdir(parents=True, exist_ok=True)
        network = pick_network()
        state = {
            "ports": {name: free_port() for name in PORTS},
            "pids": {},
            "network": {"pod_cidr": network.pod_cidr, "service_cidr": network.service_cidr},
            "bin_dir": str(tools.bin_dir),
            "kafka_libs": str(tools.kafka_libs),
            "pause_image": tools.pause_image,
        }
        self._save(state)
        self._make_network(network)
        self._make_pki(network)
        self._start_containerd(state, tools.pause_image)
        kafka_formatted = self._format_kafka(state)
        self._start_etcd(state)
        self._start_apiserver(state, wait=False)
        self._write_kubeconfig(state["ports"]["apiserver"])
        # The node's parts retry until the API server answers; the controller manager and
        # the scheduler do not (they need its RBAC roles at once).
        self._wait("containerd", self._containerd_ready, what="containerd's socket")
        self.load_image(tools.pause_archive)
        self._start_kubelet(state)
        self._start_kube_proxy(state)
        kafka_formatted()
        self._start_kafka(state, format_storage=False, wait=False)
        self._wait_apiserver(state)
        self._start_control_plane(state)
        self._wait_healthy(state)
        self._wait("kubelet", self._node_ready, what=f"node {NODE_NAME} Ready and schedulable")
        self._wait(
            "kube-controller-manager",
            lambda: (
                self._api("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200
            ),
            what="the default ServiceAccount",
        )
        self._wait("kafka", lambda: self._kafka_ready(state))
        self._check_pod(state)

    def down(self, keep_logs: bool = False) -> None:
        """Stops everything and deletes the state directory (but for ``logs/`` with
        ``keep_logs``); safe after a crash or a failed `up`. The node goes first (kubelet,
        pods, containerd), then what it left on the machine, then the control plane and
        Kafka."""
        with machine_lock():
            state = self.state()
            owner = read_node_owner()
            self._stop(state, "kubelet")
            self._remove_pods(state)
            for component in ("kube-proxy", "containerd"):
                self._stop(state, component)
            if not owner or owner.get("state_dir") == str(self.dir):
                clear_node(self.dir, owner)
            for component in ("kube-scheduler", "kube-controller-manager", "kafka"):
                self._stop(state, component)
            # The API server's graceful shutdown waits some 20 s for its own watches to
            # drain; nothing of it is kept, so it gets two.
            self._stop(state, "kube-apiserver", grace=2)
            self._stop(state, "etcd")
            kill_processes_naming(self.dir)
            unmount_under(self.dir)
            left = mounts_under(self.dir)
            if left:
                raise PlatformError(
                    f"still mounted, {self.dir} is kept: {', '.join(left)} "
                    f"(unmount them, then run down again)"
                )
            if keep_logs:
                for entry in self.dir.iterdir() if self.dir.exists() else ():
                    if entry.is_dir() and entry != self.logs:
                        shutil.rmtree(entry, ignore_errors=True)
                    elif not entry.is_dir():
                        entry.unlink()
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
            if owner and owner.get("state_dir") == str(self.dir):
                NODE_OWNER.unlink(missing_ok=True)

    def _owns_node(self) -> bool:
        return (read_node_owner() or {}).get("state_dir") == str(self.dir)

    def _take_over_the_node(self) -> None:
        """One node per machine: a platform elsewhere is brought down (whether it still
        runs or crashed), and whatever an unrecorded node left is cleared."""
        owner = read_node_owner()
        if owner and owner.get("state_dir") != str(self.dir):
            other = Path(owner["state_dir"])
            if (other / "state.json").exists():
                print(
                    f"local-platform: bringing down the platform in {other} (one node per machine)",
                    file=sys.stderr,
                )
            Platform(other).down()
        clear_node(self.dir, read_node_owner())
        NODE_OWNER.unlink(missing_ok=True)

    def stop(self, component: str) -> None:
        state = self.state()
        self._stop(state, component)
        state["pids"].pop(component, None)
        self._save(state)

    def start(self, component: str) -> None:
        if component != "kafka":
            raise PlatformError("only kafka can be restarted on its own")
        state = self.state()
        if not self._current(state):
            raise PlatformError(f"the platform in {self.dir} is of an older layout: run 'up'")
        if not self._alive(state, "kafka"):
            self._start_kafka(state, format_storage=False)

    def _current(self, state: dict) -> bool:
        """Whether this version of the script started the platform (an older one lacks ports
        or files that this one uses)."""
        return set(PORTS) <= set(state.get("ports", {})) and self.kafka_admin_credentials.is_dir()

    def status(self) -> dict[str, dict]:
        """Every process of the platform: running, pid, port, resident memory; the
        containerd shims (one per pod) together."""
        state = self.state()
        report = {}
        for component in COMPONENTS:
            pid = state.get("pids", {}).get(component)
            alive = self._alive(state, component)
            entry: dict = {"running": alive, "pid": pid}
            if component in STATUS_PORTS and state.get("ports"):
                entry["port"] = state["ports"][STATUS_PORTS[component]]
            report[component] = {**entry, **(memory_of(pid) if alive else {})}
        shims = processes_naming(str(self.containerd_socket))
        report["containerd-shims"] = {
            "running": bool(shims),
            "pids": shims,
            "rss_mib": sum(memory_of(pid).get("rss_mib", 0) for pid in shims),
        }
        return report

    # -- images ----------------------------------------------------------------
    def load_image(self, archive: Path) -> list[str]:
        """Imports an OCI (or docker) image archive into the node's containerd, in the
        ``k8s.io`` namespace where the kubelet looks, under the names the archive carries;
        returns those names. Pods use them with ``imagePullPolicy: IfNotPresent``/``Never``:
        nothing is ever pulled here."""
        archive = Path(archive)
        names = archive_image_names(archive)
        if not names:
            raise PlatformError(f"{archive}: no image name inside (an OCI ref.name or a tag)")
        self._ctr("images", "import", str(archive))
        present = set(self._ctr("images", "list", "--quiet").split())
        missing = [name for name in names if normalized_image(name) not in present]
        if missing:
            raise PlatformError(
                f"importing {archive} gave none of {', '.join(missing)} "
                f"(containerd has: {', '.join(sorted(present))})"
            )
        return names

    def _ctr(self, *args: str) -> str:
        cmd = ["ctr", "--address", str(self.containerd_socket), "--namespace", "k8s.io", *args]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if result.returncode:
            raise PlatformError(f"'{' '.join(cmd)}' failed: {result.stderr.strip()}")
        return result.stdout

    # -- network ---------------------------------------------------------------
    def _make_network(self, network: Network) -> None:
        """The pods' bridge with the gateway address (made before Kafka and the API
        server bind to it; the CNI bridge plugin takes an existing bridge as it is), the
        forwarding guard, and the CNI configuration containerd reads."""
        prefix = ipaddress.ip_network(network.pod_cidr).prefixlen
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        run(["ip", "addr", "add", f"{network.gateway}/{prefix}", "dev", BRIDGE])
        run(["ip", "link", "set", BRIDGE, "up"])
        # Pods talk to each other, to Services and to the host, never past it: forwarding
        # (which the bridge plugin turns on for Service traffic) stops at the bridge.
        run(["iptables", "-w", "-N", FORWARD_GUARD])
        for rule in (
            ["-i", BRIDGE, "-o", BRIDGE, "-j", "RETURN"],
            ["-i", BRIDGE, "-j", "DROP"],
            ["-o", BRIDGE, "-j", "DROP"],
        ):
            run(["iptables", "-w", "-A", FORWARD_GUARD, *rule])
        run(["iptables", "-w", "-I", "FORWARD", "1", "-j", FORWARD_GUARD])
        conf_dir = self.node_dir / "cni" / "net.d"
        conf_dir.mkdir(parents=True, exist_ok=True)
        (conf_dir / f"10-{CNI_NETWORK}.conflist").write_text(
            cni_conflist(network, self.node_dir / "cni" / "ipam")
        )

    # -- certificates ----------------------------------------------------------
    def _make_pki(self, network: Network) -> None:
        self.pki.mkdir(parents=True, exist_ok=True)
        self._openssl(
            "req",
            "-x509",
            *KEY_ARGS,
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
            "DNS:kubernetes.default.svc.cluster.local,"
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
            "kubelet-serving",
            f"/CN={NODE_NAME}",
            san=f"DNS:{NODE_NAME},IP:{network.gateway}",
            server=True,
        )
        # Kafka's TLS listeners, with a PEM keystore (key and certificate in one file); and
        # the Kafka admin's client certificate, with which `up` checks the mTLS listener.
        cert, key = self.issue_cert(
            "kafka", "/CN=kafka", san=f"IP:127.0.0.1,IP:{network.gateway}", server=True
        )
        write_secret(self.pki / "kafka-keystore.pem", key.read_text() + cert.read_text())
        self.kafka_client_cert(KAFKA_ADMIN)
        # Service account tokens are signed RS256, the algorithm every client expects.
        self._openssl("genrsa", "-out", "sa.key", "2048")
        self._openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")

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
            *KEY_ARGS,
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

    def kafka_client_cert(self, name: str) -> tuple[Path, Path]:
        """A client certificate and key of the platform CA with the subject ``CN=name``, which
        Kafka's mTLS listener takes as the principal ``User:name``. Their directory has the
        rest a client of that listener needs (`_write_kafka_credentials`)."""
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise PlatformError(
                f"not a Kafka client name (letters, digits, '.', '_', '-'): {name!r}"
            )
        cert, key = self.issue_cert(f"kafka-client-{name}", f"/CN={name}")
        port = self.state()["ports"]["kafka-mtls"]
        credentials = self._write_kafka_credentials(
            f"mtls-{name}",
            {
                "bootstrap.servers": f"{self.network.gateway}:{port}",
                "security.protocol": "SSL",
                "ca.crt": (self.pki / "ca.crt").read_text(),
                "tls.crt": cert.read_text(),
                "tls.key": key.read_text(),
            },
        )
        return credentials / "tls.crt", credentials / "tls.key"

    def _write_kafka_credentials(self, name: str, files: dict[str, str]) -> Path:
        """A directory of Kafka credentials, a file each, as the operator reads those of a
        mounted Secret (``KafkaSettings.credentials_dir``), and as a Secret made from it
        (``kubectl create secret generic --from-file=DIR``) gives them to a pod: only root
        reads it."""
        directory = self._kafka_credentials(name)
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        for file_name, text in files.items():
            write_secret(directory / file_name, text)
        return directory

    def _openssl(self, *args: str) -> None:
        result = subprocess.run(["openssl", *args], cwd=self.pki, capture_output=True, text=True)
        if result.returncode != 0:
            raise PlatformError(f"openssl {' '.join(args)} failed: {result.stderr.strip()}")

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

    def _component_kubeconfig(self, user: str) -> Path:
        return self.write_kubeconfig(self.dir / f"{user}.kubeconfig", user)

    # -- control plane ---------------------------------------------------------
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

    def _start_apiserver(self, state: dict, wait: bool = True) -> None:
        ports, pki, network = state["ports"], self.pki, self.network
        self._spawn(
            state,
            "kube-apiserver",
            [
                f"{state['bin_dir']}/kube-apiserver",
                f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
                # On the bridge's gateway address: the kubernetes Service's endpoint, which
                # pods reach (a DNAT to 127.0.0.1 would not work from a pod), and the host
                # too; not on the machine's own interfaces.
                f"--bind-address={network.gateway}",
                f"--advertise-address={network.gateway}",
                f"--secure-port={ports['apiserver']}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-cluster-ip-range={network.service_cidr}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                f"--kubelet-certificate-authority={pki / 'ca.crt'}",
                # The node's name does not resolve; its address does.
                "--kubelet-preferred-address-types=InternalIP",
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--v=1",
            ],
        )
        if wait:
            self._wait_apiserver(state)

    def _wait_apiserver(self, state: dict) -> None:
        ctx = self._admin_ssl_context()
        url = f"https://{self.network.gateway}:{state['ports']['apiserver']}/readyz"
        self._wait("kube-apiserver", lambda: http_ok(url, expect=b"ok", context=ctx))

    def _start_control_plane(self, state: dict) -> None:
        """kube-controller-manager (all default controllers: Deployments, ReplicaSets,
        Jobs, garbage collection, namespace finalization, ServiceAccounts and their tokens,
        node lifecycle, CSR signing) and kube-scheduler. Their health is awaited later."""
        ports, pki, bin_dir = state["ports"], self.pki, state["bin_dir"]
        kcm = self._component_kubeconfig("kube-controller-manager")
        self._spawn(
            state,
            "kube-controller-manager",
            [
                f"{bin_dir}/kube-controller-manager",
                f"--kubeconfig={kcm}",
                f"--authentication-kubeconfig={kcm}",
                f"--authorization-kubeconfig={kcm}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports['controller-manager']}",
                "--leader-elect=false",
                "--controllers=*",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                f"--service-cluster-ip-range={self.network.service_cidr}",
                # One node: checking it every second costs nothing and lifts its not-ready
                # taint within a second of the kubelet reporting Ready (5 s by default).
                "--node-monitor-period=1s",
                "--profiling=false",
                "--v=1",
            ],
        )
        scheduler = self._component_kubeconfig("kube-scheduler")
        self._spawn(
            state,
            "kube-scheduler",
            [
                f"{bin_dir}/kube-scheduler",
                f"--kubeconfig={scheduler}",
                f"--authentication-kubeconfig={scheduler}",
                f"--authorization-kubeconfig={scheduler}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports['scheduler']}",
                "--leader-elect=false",
                "--v=1",
            ],
        )

    # -- the node --------------------------------------------------------------
    def _start_containerd(self, state: dict, pause_image: str) -> None:
        root = self.containerd_socket.parent
        registry = self.node_dir / "registry"
        (registry / "_default").mkdir(parents=True, exist_ok=True)
        (registry / "_default" / "hosts.toml").write_text(
            (TEMPLATES / "registry-hosts.toml").read_text()
        )
        if len(str(self.containerd_socket)) > 100:
            raise PlatformError(
                f"the platform directory's path is too long for a socket: {self.containerd_socket}"
            )
        root.mkdir(parents=True, exist_ok=True)
        config = root / "config.toml"
        config.write_text(
            render(
                "containerd.toml",
                root=root / "root",
                state=root / "state",
                socket=self.containerd_socket,
                pause_image=pause_image,
                runc=RUNC,
                cni_bin_dir=CNI_BIN_DIR,
                cni_conf_dir=self.node_dir / "cni" / "net.d",
                registry_dir=registry,
            )
        )
        self._spawn(state, "containerd", ["containerd", "--config", str(config)])

    def _containerd_ready(self) -> bool:
        try:
            self._ctr("version")
        except PlatformError:
            return False
        return True

    def _start_kubelet(self, state: dict) -> None:
        ports, network = state["ports"], self.network
        config = self.node_dir / "kubelet.yaml"
        config.write_text(
            render(
                "kubelet.yaml",
                node_ip=network.gateway,
                port=ports["kubelet"],
                healthz_port=ports["kubelet-healthz"],
                pki=self.pki,
                containerd_socket=self.containerd_socket,
                pod_logs=self.node_dir / "pod-logs",
            )
        )
        self._spawn(
            state,
            "kubelet",
            [
                f"{state['bin_dir']}/kubelet",
                f"--config={config}",
                f"--kubeconfig={self._component_kubeconfig('kubelet')}",
                f"--root-dir={self.node_dir / 'kubelet'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={network.gateway}",
                "--v=1",
            ],
        )

    def _start_kube_proxy(self, state: dict) -> None:
        ports, network = state["ports"], self.network
        config = self.node_dir / "kube-proxy.yaml"
        config.write_text(
            render(
                "kube-proxy.yaml",
                kubeconfig=self._component_kubeconfig("kube-proxy"),
                node_name=NODE_NAME,
                node_ip=network.gateway,
                pod_cidr=network.pod_cidr,
                healthz_port=ports["proxy-healthz"],
                metrics_port=ports["proxy-metrics"],
            )
        )
        self._spawn(
            state, "kube-proxy", [f"{state['bin_dir']}/kube-proxy", f"--config={config}", "--v=1"]
        )

    def _wait_healthy(self, state: dict) -> None:
        ports, insecure = state["ports"], ssl._create_unverified_context()
        checks = {
            # Self-signed serving certificates; /healthz needs no credentials.
            "kube-controller-manager": (
                f"https://127.0.0.1:{ports['controller-manager']}/healthz",
                insecure,
            ),
            "kube-scheduler": (f"https://127.0.0.1:{ports['scheduler']}/healthz", insecure),
            "kubelet": (f"http://127.0.0.1:{ports['kubelet-healthz']}/healthz", None),
            # Answers 200 (with JSON) once its first sync of the rules is done.
            "kube-proxy": (f"http://127.0.0.1:{ports['proxy-healthz']}/healthz", None),
        }
        for component, (url, context) in checks.items():
            self._wait(component, lambda u=url, c=context: http_ok(u, expect=b"", context=c))

    def _node_ready(self) -> bool:
        """Registered, Ready, and without the taints a not-ready node carries."""
        node = self._api("GET", f"/api/v1/nodes/{NODE_NAME}")[1]
        conditions = (node.get("status") or {}).get("conditions") or []
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        spec = node.get("spec") or {}
        blocking = [t for t in spec.get("taints") or [] if t.get("effect") != "PreferNoSchedule"]
        return ready and not spec.get("unschedulable") and not blocking

    def _check_pod(self, state: dict) -> None:
        """A throwaway pod of the pause image runs (sandbox, CNI, runc, as a non-root user
        with a read-only root and no capabilities); it is deleted at once."""
        path = "/api/v1/namespaces/default/pods"
        status, body = self._api("POST", path, pod_manifest(POD_CHECK, state["pause_image"]))
        if status != 201:
            raise PlatformError(f"the node check pod was refused ({status}): {body}")
        pod: dict = {}

        def running() -> bool:
            nonlocal pod
            pod = self._api("GET", f"{path}/{POD_CHECK}")[1]
            return (pod.get("status") or {}).get("phase") == "Running"

        try:
            self._wait("kubelet", running, what="a pod running on the node", timeout=60)
        except PlatformError as exc:
            raise PlatformError(
                f"{exc}\npod status: {json.dumps(pod.get('status'))}\n"
                f"containerd (log: {self.logs / 'containerd.log'}):\n"
                f"{tail(self.logs / 'containerd.log')}"
            ) from None
        # Deleted gracefully (its grace period is 0 s): the kubelet still reports it gone.
        self._api("DELETE", f"{path}/{POD_CHECK}")

    def _remove_pods(self, state: dict) -> None:
        """Every pod sandbox goes through the runtime while it still runs (the CNI plugin
        releases its address and network namespace); whatever containerd still holds after
        that is killed and deleted."""
        if not self._alive(state, "containerd"):
            return
        endpoint = f"unix://{self.containerd_socket}"
        crictl = Path(state.get("bin_dir", "")) / "crictl"
        if crictl.exists():
            cmd = [str(crictl), "--runtime-endpoint", endpoint, "--image-endpoint", endpoint]
            with contextlib.suppress(subprocess.TimeoutExpired):
                result = subprocess.run(
                    [*cmd, "--timeout", "30s", "rmp", "--all", "--force"],
                    capture_output=True,
                    text=True,
                    timeout=90,
                )
                if result.returncode:
                    print(
                        f"local-platform: removing the pods failed ({result.stderr.strip()}); "
                        "they are killed instead",
                        file=sys.stderr,
                    )
        with contextlib.suppress(PlatformError, subprocess.TimeoutExpired):
            for task in self._ctr("tasks", "list", "--quiet").split():
                with contextlib.suppress(PlatformError):
                    self._ctr("tasks", "kill", "--signal", "SIGKILL", task)
                with contextlib.suppress(PlatformError):
                    self._ctr("tasks", "delete", "--force", task)
            containers = self._ctr("containers", "list", "--quiet").split()
            if containers:
                with contextlib.suppress(PlatformError):
                    self._ctr("containers", "delete", *containers)

    # -- Kafka -----------------------------------------------------------------
    def add_kafka_user(self, name: str) -> str:
        """Creates the SCRAM-SHA-512 user ``name`` (or gives it a new password), as the admin
        over SASL_SSL, and returns its random password once the broker takes it. Its
        principal, ``User:name``, may do nothing until ACLs allow it (`allow_kafka`)."""
        from kafka.admin import ScramMechanism, UserScramCredentialUpsertion

        password = secrets.token_urlsafe(24)
        upsert = UserScramCredentialUpsertion(name, ScramMechanism.SCRAM_SHA_512, password)
        with self._kafka_admin() as admin:
            error = admin.alter_user_scram_credentials([upsert]).get(name)
            if error:
                raise PlatformError(f"creating the Kafka user {name!r} failed: {error}")
            # The controller has it; the broker answers from the metadata it has applied.
            wait_until(
                lambda: not admin.describe_user_scram_credentials([name])[name]["error"],
                what=f"the broker knows the Kafka user {name!r}",
            )
        return password

    def allow_kafka(
        self,
        principal: str,
        topics: str | None = None,
        groups: str | None = None,
        operations: tuple[str, ...] = ("ALL",),
    ) -> None:
        """Allows ``principal`` (``User:name``) ``operations`` (ACL operation names: READ,
        WRITE, CREATE, DESCRIBE, ..., ALL) on the topics and the consumer groups whose names
        start with ``topics`` and ``groups``, from any host; returns once the broker enforces
        them. Other ACLs: ``KafkaAdminClient.create_acls`` as the admin (DLQ_SECURE_KAFKA_*)."""
        from kafka.admin import (
            ACL,
            ACLFilter,
            ACLOperation,
            ACLPermissionType,
            ACLResourcePatternType,
            ResourcePattern,
            ResourcePatternFilter,
            ResourceType,
        )

        acls = [
            ACL(
                principal,
                "*",
                ACLOperation[operation],
                ACLPermissionType.ALLOW,
                ResourcePattern(kind, prefix, ACLResourcePatternType.PREFIXED),
            )
            for kind, prefix in ((ResourceType.TOPIC, topics), (ResourceType.GROUP, groups))
            if prefix
            for operation in operations
        ]
        with self._kafka_admin() as admin:
            failed = admin.create_acls(acls)["failed"]
            if failed:
                raise PlatformError(f"creating ACLs for {principal} failed: {failed}")
            # The broker's authorizer answers DescribeAcls: what it lists, it enforces.
            mine = ACLFilter(
                principal,
                "*",
                ACLOperation.ANY,
                ACLPermissionType.ALLOW,
                ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.PREFIXED),
            )
            wait_until(
                lambda: set(acls) <= set(admin.describe_acls(mine)[0]),
                what=f"the broker enforces the ACLs of {principal}",
            )

    def _start_kafka(self, state: dict, format_storage: bool, wait: bool = True) -> None:
        if format_storage:
            self._format_kafka(state)()
        java = self._kafka_java(state)
        self._spawn(
            state, "kafka", [*java, "kafka.Kafka", str(self.dir / "kafka" / "server.properties")]
        )
        if wait:
            self._wait("kafka", lambda: self._kafka_ready(state))

    def _kafka_ready(self, state: dict) -> bool:
        """Each kind of listener answers: PLAINTEXT, SASL_SSL as the SCRAM admin, and mTLS
        with the admin's certificate."""
        return (
            kafka_ready(f"127.0.0.1:{state['ports']['kafka']}")
            and kafka_ready(**kafka_client_config(self.kafka_admin_credentials))
            and kafka_ready(**kafka_client_config(self._kafka_credentials(f"mtls-{KAFKA_ADMIN}")))
        )

    @contextlib.contextmanager
    def _kafka_admin(self) -> Iterator:
        from kafka import KafkaAdminClient

        config = kafka_client_config(self.kafka_admin_credentials)
        admin = KafkaAdminClient(**config, request_timeout_ms=10_000)
        try:
            yield admin
        finally:
            admin.close()

    def _format_kafka(self, state: dict) -> Callable[[], None]:
        """Starts formatting Kafka's storage with the SCRAM admin (a JVM run of a second or
        so, which `up` lets run beside the control plane); returns the wait for it. The
        admin's password, new per platform, goes to its credentials, which only root reads,
        and to the storage tool in an arguments file (``@file``), never on a command line."""
        java = self._kafka_java(state)
        password = secrets.token_urlsafe(24)
        self._write_kafka_credentials(
            self.kafka_admin_credentials.name,
            {
                "bootstrap.servers": f"{self.network.gateway}:{state['ports']['kafka-secure']}",
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": KAFKA_SCRAM,
                "username": KAFKA_ADMIN,
                "password": password,
                "ca.crt": (self.pki / "ca.crt").read_text(),
            },
        )
        arguments = self.dir / "kafka" / "format.args"
        write_secret(
            arguments, f"--add-scram\n{KAFKA_SCRAM}=[name={KAFKA_ADMIN},password={password}]\n"
        )
        cmd = [
            *java,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            kafka_cluster_id(),
            "-c",
            str(self.dir / "kafka" / "server.properties"),
            "--standalone",
            f"@{arguments}",
        ]
        log = self.logs / "kafka-format.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

        def finished() -> None:
            try:
                failed = proc.wait(timeout=READY_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                failed = -1
            arguments.unlink(missing_ok=True)
            if failed:
                raise PlatformError(
                    f"kafka storage format failed: {' '.join(cmd)} (log: {log})\n{tail(log)}"
                )

        return finished

    def _kafka_java(self, state: dict) -> list[str]:
        """Writes the broker's configuration; returns the JVM command line before the main
        class."""
        ports = state["ports"]
        kafka_dir = self.dir / "kafka"
        kafka_dir.mkdir(parents=True, exist_ok=True)
        (kafka_dir / "server.properties").write_text(
            KAFKA_PROPERTIES.format(
                node_id=1,
                broker=ports["kafka"],
                pods=ports["kafka-pods"],
                secure=ports["kafka-secure"],
                mtls=ports["kafka-mtls"],
                gateway=self.network.gateway,
                controller=ports["controller"],
                data=kafka_dir / "data",
                admin=KAFKA_ADMIN,
                keystore=self.pki / "kafka-keystore.pem",
                ca=self.pki / "ca.crt",
            )
        )
        (kafka_dir / "log4j2.properties").write_text(
            KAFKA_LOG4J.format(log=self.logs / "kafka-server.log")
        )
        return [
            "java",
            "-Xms256m",
            "-Xmx512m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={kafka_dir / 'log4j2.properties'}",
            "-cp",
            f"{state['kafka_libs']}/*",
        ]

    # -- API -------------------------------------------------------------------
    def _api(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """One request as the platform admin: (status, decoded body); (0, {}) when the API
        server does not answer."""
        url = f"https://{self.network.gateway}:{self.state()['ports']['apiserver']}{path}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(
                request, timeout=5, context=self._admin_ssl_context()
            ) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            with contextlib.suppress(ValueError):
                return exc.code, json.loads(exc.read() or b"{}")
            return exc.code, {}
        except (OSError, ValueError):
            return 0, {}

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

    def _wait(
        self,
        component: str,
        ready: Callable[[], bool],
        what: str | None = None,
        timeout: float = READY_TIMEOUT,
    ) -> None:
        state = self.state()
        log = self.logs / f"{component}.log"
        command = " ".join(state["commands"][component])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._alive(state, component):
                raise PlatformError(
                    f"{component} exited during start-up: {command} (log: {log})\n{tail(log)}"
                )
            if ready():
                return
            time.sleep(0.25)
        raise PlatformError(
            f"{what or component} not ready after {timeout:.0f}s: {command} (log: {log})\n"
            f"{tail(log)}"
        )

    def _alive(self, state: dict, component: str) -> bool:
        pid = state.get("pids", {}).get(component)
        return bool(pid) and alive(pid)

    def _stop(self, state: dict, component: str, grace: float = 20) -> None:
        """SIGTERM to the component's process group, SIGKILL after ``grace`` seconds."""
        pid = state.get("pids", {}).get(component)
        if not pid or not self._alive(state, component):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and self._alive(state, component):
            reap(pid)
            time.sleep(0.1)
        if self._alive(state, component):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            time.sleep(0.2)
        reap(pid)


# -- the machine ------------------------------------------------------------------------

_lock_depth = 0


@contextlib.contextmanager
def machine_lock() -> Iterator[None]:
    """Serializes `up` and `down` of every platform on this machine (they share the node);
    re-entrant, as `up` brings another platform down while it holds it."""
    global _lock_depth
    if _lock_depth:
        _lock_depth += 1
        try:
            yield
        finally:
            _lock_depth -= 1
        return
    NODE_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with NODE_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _lock_depth = 1
        try:
            yield
        finally:
            _lock_depth = 0
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_node_owner() -> dict | None:
    try:
        return json.loads(NODE_OWNER.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return {}


def write_node_owner(record: dict) -> None:
    NODE_OWNER.parent.mkdir(parents=True, exist_ok=True)
    NODE_OWNER.write_text(json.dumps(record, indent=2))


def pick_network() -> Network:
    """Ranges that no route, address or name server of this machine uses yet."""
    used = [
        ipaddress.ip_network(route["dst"], strict=False)
        for route in json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]))
        if route.get("dst") not in (None, "default") and route.get("dev") != BRIDGE
    ]
    for link in json.loads(run(["ip", "-j", "-4", "addr", "show"])):
        if link.get("ifname") != BRIDGE:
            used += [
                ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)
                for a in link.get("addr_info", [])
            ]
    with contextlib.suppress(OSError):
        for line in Path("/etc/resolv.conf").read_text().splitlines():
            fields = line.split()
            if len(fields) > 1 and fields[0] == "nameserver":
                with contextlib.suppress(ValueError):
                    used.append(ipaddress.ip_network(fields[1]))

    def free(candidates: list[str]) -> str:
        for cidr in candidates:
            net = ipaddress.ip_network(cidr)
            if not any(net.version == u.version and net.overlaps(u) for u in used):
                return cidr
        raise PlatformError(f"no free address range among {', '.join(candidates)}")

    pods = free(POD_RANGES)
    used.append(ipaddress.ip_network(pods))
    return Network(pods, free(SERVICE_RANGES))


def clear_node(state_dir: Path, owner: dict | None) -> None:
    """Clears what a node leaves on the machine, however it ended: pod processes (by the
    kubelet's cgroups), the runtime's leftover processes and mounts (by the platform
    directory), pod network namespaces (by the bridge), iptables chains, the bridge, the
    CNI cache, the cgroups, log links; and puts back the kernel settings the node changed.
    Safe when there is nothing to clear."""
    kill_cgroup_processes(KUBE_CGROUP)
    # The node's processes name files under node/ (the shims: containerd's socket).
    kill_processes_naming(state_dir / "node")
    for netns in pod_network_namespaces():
        path = Path("/run/netns") / netns
        run(["umount", "-l", str(path)], check=False)
        with contextlib.suppress(OSError):
            path.unlink()
    unmount_under(state_dir)
    remove_iptables_chains(IPTABLES_PREFIXES)
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        run(["ip", "link", "delete", BRIDGE], check=False)
    # libcni's result cache: the pods' network and containerd's loopback network.
    for network in (CNI_NETWORK, "cni-loopback"):
        for cached in (CNI_CACHE / "results").glob(f"{network}-*"):
            cached.unlink(missing_ok=True)
    shutil.rmtree(CNI_CACHE / "networks" / CNI_NETWORK, ignore_errors=True)
    for hierarchy in CGROUP_ROOT.iterdir():
        remove_cgroup(hierarchy / KUBE_CGROUP)
    logs = f"{state_dir}/"
    for link in CONTAINER_LOG_LINKS.glob("*.log"):
        with contextlib.suppress(OSError):
            if link.is_symlink() and os.readlink(link).startswith(logs):
                link.unlink()
    write_sysctls((owner or {}).get("sysctls") or {})


def pod_network_namespaces() -> list[str]:
    """The named network namespaces at the other end of the bridge's veth links."""
    links = run(["ip", "-j", "link", "show", "master", BRIDGE], check=False)
    ids = {link["link_netnsid"] for link in json.loads(links or "[]") if "link_netnsid" in link}
    if not ids:
        return []
    listed = json.loads(run(["ip", "-j", "netns", "list"], check=False) or "[]")
    return [ns["name"] for ns in listed if ns.get("id") in ids]


def remove_iptables_chains(prefixes: tuple[str, ...]) -> None:
    """Deletes, in every table of both families, the chains whose names start with one of
    ``prefixes`` and the rules that jump to them; one iptables-restore per family."""
    jump = re.compile(r"(?:^|\s)-[jg]\s+(" + "|".join(map(re.escape, prefixes)) + r")\S*")
    for family in ("iptables", "ip6tables"):
        dump = run([f"{family}-save"], check=False)
        script: list[str] = []
        table, chains, deletes = "", [], []
        for line in dump.splitlines():
            if line.startswith("*"):
                table, chains, deletes = line[1:], [], []
            elif line.startswith(":"):
                name = line[1:].split()[0]
                if name.startswith(prefixes):
                    chains.append(name)
            elif line.startswith("-A "):
                chain = line.split()[1]
                if not chain.startswith(prefixes) and jump.search(line):
                    deletes.append("-D" + line[2:])
            elif line == "COMMIT" and (chains or deletes):
                script += [f"*{table}", *deletes]
                script += [f"-F {chain}" for chain in chains]
                script += [f"-X {chain}" for chain in chains]
                script.append("COMMIT")
        if script:
            result = subprocess.run(
                [f"{family}-restore", "-w", "--noflush"],
                input="\n".join(script) + "\n",
                capture_output=True,
                text=True,
            )
            if result.returncode:
                raise PlatformError(
                    f"{family}-restore --noflush failed removing the node's chains: "
                    f"{result.stderr.strip()}"
                )


def kill_cgroup_processes(name: str) -> None:
    """SIGKILLs every process in the ``name`` cgroup trees (pods whose shim is gone), and
    waits a little for them to go."""
    deadline = time.monotonic() + 10
    while True:
        pids = {
            int(pid)
            for procs in CGROUP_ROOT.glob(f"*/{name}/**/cgroup.procs")
            for pid in read_text(procs).split()
        }
        pids.discard(os.getpid())
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def remove_cgroup(path: Path) -> None:
    if not path.is_dir():
        return
    for child in path.iterdir():
        if child.is_dir():
            remove_cgroup(child)
    for _ in range(20):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)  # a killed process takes a moment to leave it


def processes_naming(needle_text: str) -> list[int]:
    """Processes with ``needle_text`` in an argument: the platform's own (their command
    lines name files in its directory) and the containerd shims (they name the socket)."""
    needle = needle_text.encode()
    mine = {os.getpid(), os.getppid()}
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in mine:
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(needle in arg for arg in args[1:]):
            found.append(int(proc.name))
    return found


def kill_processes_naming(path: Path) -> None:
    """TERM, then KILL after 5 s, to whatever still runs with ``path`` in its command
    line (after a crash: the components and shims no state file lists any more)."""
    pids = processes_naming(f"{path}/")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(alive(pid) for pid in pids):
            for pid in pids:
                reap(pid)
            time.sleep(0.1)
        pids = [pid for pid in pids if alive(pid)]
        if not pids:
            return


def mounts_under(directory: Path) -> list[str]:
    prefix = f"{directory}/"
    mounts = []
    for line in read_text(Path("/proc/self/mountinfo")).splitlines():
        point = re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
        if point.startswith(prefix):
            mounts.append(point)
    return mounts


def unmount_under(directory: Path) -> None:
    """Lazily unmounts everything mounted below ``directory`` (the kubelet's volumes,
    containerd's rootfs and shm mounts), deepest first."""
    for point in sorted(set(mounts_under(directory)), key=len, reverse=True):
        run(["umount", "-l", point], check=False)


def read_sysctls(names: tuple[str, ...]) -> dict[str, str]:
    return {
        name: read_text(Path("/proc/sys") / name).strip()
        for name in names
        if (Path("/proc/sys") / name).exists()
    }


def write_sysctls(values: dict[str, str]) -> None:
    for name, value in values.items():
        with contextlib.suppress(OSError):
            path = Path("/proc/sys") / name
            if path.read_text().strip() != value:
                path.write_text(value)


# -- configuration ------------------------------------------------------------------------

# Certificates of the platform use P-256 keys: an `up` issues ten, and RSA keys take
# a fifth of a second each.
KEY_ARGS = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")


def render(template: str, **values: object) -> str:
    """A configuration file from ``hack/node/``, its ``${name}`` placeholders filled."""
    text = (TEMPLATES / template).read_text()
    return string.Template(text).substitute({k: str(v) for k, v in values.items()})


def cni_conflist(network: Network, ipam_dir: Path) -> str:
    """The pods' network: the platform's bridge (which already has the gateway address),
    addresses from the pod range kept under the platform directory, no masquerading
    (nothing pods send is meant to leave the machine), and hostPort support."""
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": CNI_NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(ipam_dir),
                        "ranges": [[{"subnet": network.pod_cidr, "gateway": network.gateway}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def pod_manifest(name: str, image: str, labels: dict[str, str] | None = None) -> dict:
    """A pod of ``image`` (loaded, never pulled) that the restricted Pod Security profile
    admits: non-root user, read-only root filesystem, no capabilities, no privilege
    escalation, the runtime's seccomp profile."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 0,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65535,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "pause",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def archive_image_names(archive: Path) -> list[str]:
    """The image names an OCI archive (``index.json`` ref.name annotations) or a docker
    archive (``manifest.json`` RepoTags) carries."""
    try:
        with tarfile.open(archive) as tar:
            members = {m.name.removeprefix("./"): m for m in tar.getmembers()}
            if "index.json" in members:
                index = json.load(tar.extractfile(members["index.json"]))  # type: ignore[arg-type]
                return [
                    m["annotations"]["org.opencontainers.image.ref.name"]
                    for m in index.get("manifests", [])
                    if "org.opencontainers.image.ref.name" in m.get("annotations", {})
                ]
            if "manifest.json" in members:
                manifest = json.load(tar.extractfile(members["manifest.json"]))  # type: ignore[arg-type]
                return [tag for entry in manifest for tag in entry.get("RepoTags") or []]
    except (OSError, tarfile.TarError, ValueError) as exc:
        raise PlatformError(f"{archive}: not an image archive ({exc})") from None
    return []


def normalized_image(name: str) -> str:
    """The name as containerd and the kubelet spell it (docker.io/library/ for short ones)."""
    first, _, rest = name.partition("/")
    if not rest:
        return f"docker.io/library/{name}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{name}"
    return name


KAFKA_PROPERTIES = """\
process.roles=broker,controller
node.id={node_id}
controller.quorum.bootstrap.servers=127.0.0.1:{controller}
# PLAINTEXT (the host) and PODS (pods) are the platform's unauthenticated dev path, which the
# tests of the operator itself and the demo use; a tenant never does. SECURE (SASL_SSL,
# SCRAM-SHA-512) and MTLS (client certificates) are the authenticated ones, on the gateway
# address, which is the host's too.
listeners=PLAINTEXT://127.0.0.1:{broker},PODS://{gateway}:{pods},SECURE://{gateway}:{secure},MTLS://{gateway}:{mtls},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{broker},PODS://{gateway}:{pods},SECURE://{gateway}:{secure},MTLS://{gateway}:{mtls},CONTROLLER://127.0.0.1:{controller}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,PODS:PLAINTEXT,SECURE:SASL_SSL,MTLS:SSL,CONTROLLER:PLAINTEXT
# Every request is checked against the ACLs in the metadata log; what no ACL names is for
# super users only.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
# Super users: the SCRAM admin, and User:ANONYMOUS, which is every client of a PLAINTEXT
# listener: PLAINTEXT and PODS (the dev path) and CONTROLLER (this node's broker and
# controller). No TLS listener yields ANONYMOUS: SECURE needs a SCRAM login, MTLS a
# client certificate.
super.users=User:ANONYMOUS;User:{admin}
# A server certificate of the platform CA (for 127.0.0.1 and the gateway) and the CA, as PEM.
ssl.keystore.type=PEM
ssl.keystore.location={keystore}
ssl.truststore.type=PEM
ssl.truststore.location={ca}
listener.name.secure.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.secure.scram-sha-512.sasl.jaas.config=\\
  org.apache.kafka.common.security.scram.ScramLoginModule required;
# A certificate of the platform CA whose subject is CN=<name> alone is User:<name>; any
# other keeps its whole DN (Kafka's default), so a Kubernetes certificate is nobody here.
listener.name.mtls.ssl.client.auth=required
listener.name.mtls.ssl.principal.mapping.rules=RULE:^CN=([^,]+)$/$1/,DEFAULT
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


# -- small helpers --------------------------------------------------------------------------


def run(cmd: list[str], check: bool = True) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if check and result.returncode:
        raise PlatformError(f"'{' '.join(cmd)}' failed: {result.stderr.strip()}")
    return result.stdout


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


# A credentials directory's files (the keys of a Secret) and kafka-python's arguments.
def kafka_client_config(credentials: Path) -> dict[str, object]:
    """kafka-python arguments from a credentials directory, read by the operator's own
    ``KafkaSettings.credentials_dir`` (the one home of that Secret layout); callers choose
    their request timeout."""
    from dlq_operator.settings import KafkaSettings

    config = KafkaSettings(credentials_dir=credentials).client_config()
    del config["request_timeout_ms"]
    return config


def kafka_ready(bootstrap_servers: str | list[str], **security: object) -> bool:
    """Ready means a metadata request answers and lists this broker; ``security``: the
    client's TLS and SASL arguments (kafka-python's)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap_servers,
            request_timeout_ms=3000,
            bootstrap_timeout_ms=3000,
            **security,
        )
    except (KafkaError, OSError):
        return False
    try:
        return bool(admin.describe_cluster().get("brokers"))
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (ProcessLookupError, FileNotFoundError, PermissionError):
        return False


def memory_of(pid: int) -> dict[str, int]:
    """Resident and peak resident memory in MiB, from /proc."""
    fields = {}
    for line in read_text(Path(f"/proc/{pid}/status")).splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[{"VmRSS": "rss_mib", "VmHWM": "peak_rss_mib"}[key]] = (
                int(value.split()[0]) // 1024
            )
    return fields


def wait_until(ready: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise PlatformError(f"{what}: not after {timeout:.0f}s")
        time.sleep(0.05)


def write_secret(path: Path, text: str) -> None:
    """Writes ``text`` to a file that only its owner reads, from its creation on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


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
        choices=[
            "up",
            "down",
            "status",
            "env",
            "stop",
            "start",
            "build",
            "load-image",
            "kafka-user",
            "kafka-cert",
        ],
    )
    parser.add_argument(
        "argument",
        nargs="?",
        help="a component (stop, start), an image archive (load-image) or a name (kafka-user, "
        "kafka-cert)",
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
            if not args.argument:
                parser.error("load-image needs the path of an image archive")
            for name in platform.load_image(Path(args.argument)):
                print(name)
        elif args.command in ("kafka-user", "kafka-cert"):
            if not args.argument:
                parser.error(f"{args.command} needs a name")
            if args.command == "kafka-user":
                print(platform.add_kafka_user(args.argument))
            else:
                print(*platform.kafka_client_cert(args.argument), sep="\n")
        else:
            if args.argument not in COMPONENTS:
                parser.error(f"{args.command} needs a component: {', '.join(COMPONENTS)}")
            getattr(platform, args.command)(args.argument)
    except PlatformError as exc:
        print(f"local-platform: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
