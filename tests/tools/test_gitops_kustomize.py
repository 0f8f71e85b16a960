"""examples/gitops/ rendered by the kustomize built into the pinned kubectl, as
`kubectl apply -k`, Flux and Argo CD render it: every object lands in the kustomization's
namespace and still follows its CRD."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.gitops import GITOPS_EXAMPLE, crd_schema_errors


@pytest.fixture(scope="module")
def rendered(tools_bin_dir: Path) -> list[dict]:
    kubectl = tools_bin_dir / "kubectl"
    if not kubectl.is_file():
        pytest.fail(f"{kubectl} is missing: build it with `make tools`", pytrace=False)
    out = subprocess.run(
        [str(kubectl), "kustomize", str(GITOPS_EXAMPLE)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_every_object_lands_in_the_namespace(rendered: list[dict]) -> None:
    namespace = yaml.safe_load((GITOPS_EXAMPLE / "kustomization.yaml").read_text())["namespace"]
    names = sorted(
        (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in rendered
    )
    assert names == sorted(
        [("Namespace", None, namespace), ("RetryPolicy", namespace, "standard")]
        + [("DeadLetterQueue", namespace, n) for n in ("rfq", "trade", "market-data", "position")]
    )


def test_rendered_objects_follow_the_crds(rendered: list[dict]) -> None:
    for obj in rendered:
        if obj["apiVersion"].startswith("dlq.orion.io/"):
            assert crd_schema_errors(obj) == [], obj["metadata"]["name"]
