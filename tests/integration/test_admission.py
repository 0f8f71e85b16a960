"""Invalid manifests are refused at admission by the real kube-apiserver, with a message that
names the field: the generated CRDs' schemas and CEL rules, exercised with kubectl apply."""

from __future__ import annotations

import json

import pytest

from tests.admission_cases import CASES, AdmissionCase

PLURALS = {
    "DeadLetterQueue": "deadletterqueues",
    "RetryPolicy": "retrypolicies",
    "ReprocessRequest": "reprocessrequests",
}


def manifest(case: AdmissionCase, spec: dict, name: str) -> str:
    return json.dumps(
        {
            "apiVersion": "dlq.orion.io/v1alpha1",
            "kind": case.kind,
            "metadata": {"name": name},
            "spec": spec,
        }
    )


@pytest.mark.parametrize("case", CASES, ids=[f"{c.kind}: {c.name}" for c in CASES])
def test_admission(case: AdmissionCase, crds, kubectl, namespace, unique) -> None:
    name = f"case-{unique}"
    if case.old is not None:
        kubectl("apply", "-n", namespace, "-f", "-", input=manifest(case, case.old, name))
    result = kubectl(
        "apply", "-n", namespace, "-f", "-", input=manifest(case, case.spec, name), check=False
    )
    # Namespaces are never finalized on this control plane: remove what was admitted, so
    # that an operator started later does not reconcile it.
    kubectl("delete", PLURALS[case.kind], name, "-n", namespace, "--wait=false", check=False)
    if case.admitted:
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode != 0, f"admitted, but should be refused: {result.stdout}"
    assert "is invalid" in result.stderr
    if case.field:
        assert case.field in result.stderr, result.stderr
    if case.message:
        assert case.message in result.stderr, result.stderr
