"""What GitOps tools say about the project's objects: Flux's kstatus and Argo CD's health
scripts, computed by ``gitops-check`` (hack/gitops-check, built by ``make tools``), and the
CRDs' OpenAPI schemas as a validator that needs no cluster.

``health_verdicts(objects)`` works on any objects of the three kinds: hand-written ones
(tests/tools) or ones read back from the API server (an e2e test).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft4Validator

from local_platform import Tools

ROOT = Path(__file__).resolve().parent.parent
GITOPS_EXAMPLE = ROOT / "examples" / "gitops"
ARGO_HEALTH_DIR = GITOPS_EXAMPLE / "argocd" / "health"
# The Argo CD health script of each kind, as installed by examples/gitops/argocd/argocd-cm.yaml.
ARGO_HEALTH_SCRIPTS = {
    "DeadLetterQueue": ARGO_HEALTH_DIR / "deadletterqueue.lua",
    "RetryPolicy": ARGO_HEALTH_DIR / "retrypolicy.lua",
    "ReprocessRequest": ARGO_HEALTH_DIR / "reprocessrequest.lua",
}
GROUP = "dlq.orion.io"


class GitopsCheckError(RuntimeError):
    """gitops-check is missing, or it failed (a script error, an object it cannot read)."""


@dataclass(frozen=True)
class Verdict:
    """One line of gitops-check's output."""

    kind: str
    namespace: str
    name: str
    status: str
    message: str


@dataclass(frozen=True)
class Health:
    """What Flux (kstatus) and Argo CD (the kind's health script) say about one object."""

    kind: str
    namespace: str
    name: str
    kstatus: str
    kstatus_message: str
    argo: str
    argo_message: str

    @property
    def pair(self) -> tuple[str, str]:
        return self.kstatus, self.argo


def gitops_check_path(bin_dir: Path | None = None) -> Path:
    """The built gitops-check (in the platform tools' bin directory unless given one)."""
    tool = (bin_dir or Tools.locate().bin_dir) / "gitops-check"
    if not tool.is_file():
        raise GitopsCheckError(
            f"{tool} is missing: build it with `make tools` or `bash hack/build-tools.sh "
            "gitops-check`"
        )
    return tool


def run_gitops_check(
    args: Sequence[str], objects: Sequence[Mapping[str, Any]], tool: Path | None = None
) -> list[Verdict]:
    """gitops-check ``args`` on ``objects`` (sent as one List), one verdict per object."""
    document = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    result = subprocess.run(
        [str(tool or gitops_check_path()), *args],
        input=json.dumps(document),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise GitopsCheckError(
            f"gitops-check {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}"
        )
    verdicts = [Verdict(**json.loads(line)) for line in result.stdout.splitlines()]
    if len(verdicts) != len(objects):
        raise GitopsCheckError(f"{len(objects)} objects but {len(verdicts)} verdicts")
    return verdicts


def kstatus_verdicts(
    objects: Sequence[Mapping[str, Any]], tool: Path | None = None
) -> list[Verdict]:
    """kstatus of each object: Current, InProgress, Failed or Terminating."""
    return run_gitops_check(["kstatus"], objects, tool)


def argo_verdicts(objects: Sequence[Mapping[str, Any]], tool: Path | None = None) -> list[Verdict]:
    """Argo CD health of each object, by its kind's script (one run per kind)."""
    verdicts: list[Verdict | None] = [None] * len(objects)
    for kind, script in ARGO_HEALTH_SCRIPTS.items():
        indexes = [i for i, obj in enumerate(objects) if obj.get("kind") == kind]
        if not indexes:
            continue
        found = run_gitops_check(["argo-health", str(script)], [objects[i] for i in indexes], tool)
        for i, verdict in zip(indexes, found, strict=True):
            verdicts[i] = verdict
    missing = [objects[i].get("kind") for i, v in enumerate(verdicts) if v is None]
    if missing:
        raise GitopsCheckError(f"no Argo CD health script for {sorted(set(map(str, missing)))}")
    return [v for v in verdicts if v is not None]


def health_verdicts(objects: Sequence[Mapping[str, Any]], tool: Path | None = None) -> list[Health]:
    """kstatus and Argo CD health of each of ``objects`` (DeadLetterQueue, RetryPolicy or
    ReprocessRequest, as the API server returns them), in their order."""
    pairs = zip(kstatus_verdicts(objects, tool), argo_verdicts(objects, tool), strict=True)
    return [
        Health(k.kind, k.namespace, k.name, k.status, k.message, a.status, a.message)
        for k, a in pairs
    ]


# -- the CRDs' schemas ---------------------------------------------------------------------


@cache
def _crd_schemas() -> dict[str, dict[str, Any]]:
    schemas = {}
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        (version,) = (v for v in crd["spec"]["versions"] if v.get("storage"))
        kind = crd["spec"]["names"]["kind"]
        schemas[f"{crd['spec']['group']}/{version['name']}/{kind}"] = _strict(
            version["schema"]["openAPIV3Schema"]
        )
    return schemas


def _strict(node: Any) -> Any:
    """``node`` refusing unknown fields, as `kubectl apply` (strict field validation) does."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    strict = {key: _strict(value) for key, value in node.items()}
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


def crd_schema_errors(obj: Mapping[str, Any]) -> list[str]:
    """Where ``obj`` (one of the project's kinds) breaks its CRD's OpenAPI schema: types,
    enums, bounds, patterns, required and unknown fields. CEL rules are the models' job."""
    key = f"{obj.get('apiVersion')}/{obj.get('kind')}"
    schema = _crd_schemas().get(key)
    if schema is None:
        return [f"no CRD in crds/ serves {key}"]
    errors: Iterator[Any] = Draft4Validator(schema).iter_errors(dict(obj))
    return [f"{'.'.join(map(str, e.absolute_path)) or '(object)'}: {e.message}" for e in errors]
