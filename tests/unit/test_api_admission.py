"""The Python models admit exactly what the API server admits (table: tests/admission_cases.py).

Transition rules (``oldSelf``) exist only in the cluster; the integration tests replay the
same table against a real kube-apiserver.
"""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from dlq_operator.api import DeadLetterQueueSpec, ReprocessRequestSpec, RetryPolicySpec
from tests.admission_cases import CASES, AdmissionCase

SPEC_MODELS: dict[str, type[BaseModel]] = {
    "DeadLetterQueue": DeadLetterQueueSpec,
    "RetryPolicy": RetryPolicySpec,
    "ReprocessRequest": ReprocessRequestSpec,
}


def _located(error: ValidationError, field: str) -> bool:
    path = field.removeprefix("spec.")
    return any(
        ".".join(str(part) for part in detail["loc"]).startswith(path) for detail in error.errors()
    )


CREATE_CASES = [case for case in CASES if case.old is None]
UPDATE_CASES = [case for case in CASES if case.old is not None]


def _ids(cases: list[AdmissionCase]) -> list[str]:
    return [f"{case.kind}: {case.name}" for case in cases]


@pytest.mark.parametrize("case", CREATE_CASES, ids=_ids(CREATE_CASES))
def test_model_admits_what_the_api_server_admits(case: AdmissionCase) -> None:
    model = SPEC_MODELS[case.kind]
    if case.admitted:
        model.model_validate(case.spec)
        return
    with pytest.raises(ValidationError) as caught:
        model.model_validate(case.spec)
    if case.message:
        assert case.message in str(caught.value)
    else:
        assert case.field is not None
        assert _located(caught.value, case.field), caught.value


@pytest.mark.parametrize("case", UPDATE_CASES, ids=_ids(UPDATE_CASES))
def test_updates_are_judged_by_transition_rules_alone(case: AdmissionCase) -> None:
    """Both sides of an update are valid objects: only a rule on oldSelf may refuse it."""
    model = SPEC_MODELS[case.kind]
    assert case.old is not None
    model.model_validate(case.old)
    model.model_validate(case.spec)
