"""The local platform's one Kubernetes node: containerd, the kubelet and kube-proxy, on a
bridge network the platform picks for itself.

What it takes on these machines (cgroup v1, root without CAP_SYS_RESOURCE, no registry):

- containerd's CRI must not ask for a negative ``oom_score_adj`` (``restrict_oom_score_adj``):
  refused, every sandbox would fail with runc's "can't get final child's PID from pipe";
- runc, not crun (crun refuses the hybrid cgroup layout), with the cgroupfs driver, and a
  kubelet told that cgroup v1 is fine (``failCgroupV1: false``);
- a pause image built here (build-tools.sh), named in ``sandbox_image``;
- pods reach the host on the bridge's gateway address: the API server advertises it (the
  ``kubernetes`` Service's endpoint) and Kafka has a listener there.

The node is machine-wide (kube-proxy's iptables chains, the kubelet's cgroups, the CNI
network namespaces), so one runs at a time: :func:`reset_machine` clears what any earlier
node left, and ``local_platform`` brings a running one down before starting another.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

BRIDGE = "dlq0"
NODE_NAME = "dlq-node"
CNI_NETWORK = "dlq-pods"
CNI_BIN_DIR = "/usr/lib/cni"
RUNC = "/usr/sbin/runc"
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Candidate ranges, the first free one is taken: pods get a /24, Services a /24.
POD_RANGES = [f"10.{second}.{third}.0/24" for second in (244, 245, 246) for third in (0, 64, 128)]
SERVICE_RANGES = [f"10.{second}.0.0/24" for second in (96, 97, 98)]


class NodeError(RuntimeError):
    """A node part could not be set up or cleared; the message names the command."""


@dataclass(frozen=True)
class Network:
    pod_cidr: str
    service_cidr: str

    @property
    def gateway(self) -> str:
        """The host's address on the bridge: where pods reach the API server and Kafka."""
        return str(next(ipaddress.ip_network(self.pod_cidr).hosts()))

    @property
    def kubernetes_service_ip(self) -> str:
        return str(next(ipaddress.ip_network(self.service_cidr).hosts()))


def pick_network() -> Network:
    """Ranges that no route or address of this machine uses yet."""
    routes = json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]))
    used = [
        ipaddress.ip_network(r["dst"], strict=False)
        for r in routes
        if r.get("dst") not in (None, "default") and r.get("dev") != BRIDGE
    ]

    def free(candidates: list[str]) -> str:
        for cidr in candidates:
            if not any(ipaddress.ip_network(cidr).overlaps(net) for net in used):
                return cidr
        raise NodeError(f"no free address range among {', '.join(candidates)}")

    pods = free(POD_RANGES)
    used.append(ipaddress.ip_network(pods))
    return Network(pods, free(SERVICE_RANGES))


def run(cmd: list[str], check: bool = True) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if check and result.returncode:
        raise NodeError(f"'{' '.join(cmd)}' failed: {result.stderr.strip()}")
    return result.stdout


def create_bridge(network: Network) -> None:
    """The pods' bridge with the gateway address, made before Kafka binds to it (the CNI
    bridge plugin takes an existing bridge as it is)."""
    run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    prefix = ipaddress.ip_network(network.pod_cidr).prefixlen
    run(["ip", "addr", "add", f"{network.gateway}/{prefix}", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def reset_machine(kube_proxy: Path | None = None) -> None:
    """Clears what a node leaves on the machine, whichever platform ran it and however it
    ended: containers (their shims), network namespaces, kube-proxy's rules, the bridge,
    the kubelet's cgroups. Safe when there is nothing to clear."""
    for pid in _pids_of("containerd-shim-runc-v2", "k8s.io"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for mount in reversed(_mounts()):
        if mount.startswith("/run/netns/cni-") or mount.startswith("/var/run/netns/cni-"):
            run(["umount", "-l", mount], check=False)
    for netns in Path("/run/netns").glob("cni-*"):
        with contextlib.suppress(OSError):
            netns.unlink()
    if kube_proxy and kube_proxy.exists():
        run([str(kube_proxy), "--cleanup"], check=False)
    run(["ip", "link", "del", BRIDGE], check=False)
    for controller in CGROUP_ROOT.iterdir():
        _remove_cgroup(controller / "kubepods")


def unmount_under(directory: Path) -> None:
    """Lazily unmounts everything mounted below ``directory`` (the kubelet's volumes,
    containerd's rootfs mounts), deepest first."""
    prefix = f"{directory.resolve()}/"
    for mount in sorted((m for m in _mounts() if m.startswith(prefix)), reverse=True):
        run(["umount", "-l", mount], check=False)


def _mounts() -> list[str]:
    return [
        line.split()[1].replace("\\040", " ")
        for line in Path("/proc/self/mounts").read_text().splitlines()
    ]


def _pids_of(executable: str, argument: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(executable.encode()) and argument.encode() in args:
            pids.append(int(proc.name))
    return pids


def _remove_cgroup(path: Path) -> None:
    if not path.is_dir():
        return
    for child in path.iterdir():
        if child.is_dir():
            _remove_cgroup(child)
    with contextlib.suppress(OSError):
        path.rmdir()


# -- configuration files ------------------------------------------------------------------


def containerd_config(root: Path, sandbox_image: str, cni_conf_dir: Path) -> str:
    return f"""\
version = 2
root = "{root / "root"}"
state = "{root / "state"}"

[grpc]
  address = "{root / "containerd.sock"}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  # A negative oom_score_adj needs CAP_SYS_RESOURCE, which these machines lack.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{RUNC}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cni_conf_dir}"
"""


def cni_conflist(network: Network, ipam_dir: Path) -> str:
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": CNI_NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(ipam_dir),
                        "ranges": [[{"subnet": network.pod_cidr}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def kubelet_config(network: Network, pki: Path, socket: Path, port: int, healthz_port: int) -> str:
    return json.dumps(
        {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": network.gateway,
            "port": port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz_port,
            "tlsCertFile": str(pki / "kubelet-serving.crt"),
            "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{socket}",
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,
            "failSwapOn": False,
            "resolvConf": "/etc/resolv.conf",
            "serializeImagePulls": False,
            # A busy shared disk must not evict the tests' pods.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "nodefs.inodesFree": "1%",
                "imagefs.available": "1%",
            },
            "imageGCHighThresholdPercent": 99,
            "imageGCLowThresholdPercent": 98,
            "maxPods": 110,
        },
        indent=2,
    )


def kube_proxy_config(network: Network, kubeconfig: Path, healthz: int, metrics: int) -> str:
    return json.dumps(
        {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clusterCIDR": network.pod_cidr,
            "hostnameOverride": NODE_NAME,
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "healthzBindAddress": f"127.0.0.1:{healthz}",
            "metricsBindAddress": f"127.0.0.1:{metrics}",
            # Leave the machine's conntrack sysctls alone.
            "conntrack": {"maxPerCore": 0},
        },
        indent=2,
    )
