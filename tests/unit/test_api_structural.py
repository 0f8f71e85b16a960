"""Turning pydantic JSON schema into a structural schema."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field

from dlq_operator.api.common import CelRule, SpecModel, cel_rules
from dlq_operator.api.structural import structural_schema
from dlq_operator.errors import SchemaError

NOT_NEGATIVE = CelRule("self.size >= 0", "spec.inner.size must not be negative")
IMMUTABLE = CelRule("self == oldSelf", "spec.inner is immutable")


class Inner(SpecModel):
    """An inner object."""

    model_config = ConfigDict(json_schema_extra=cel_rules(NOT_NEGATIVE))

    size: int = Field(1, description="A size.")


class Outer(SpecModel):
    """An outer object."""

    inner: Inner = Field(description="The inner one.", json_schema_extra=cel_rules(IMMUTABLE))
    maybe: Inner | None = Field(None, description="Perhaps one.")
    labels: dict[str, str] = Field({}, description="Some labels.")


def test_references_are_inlined_with_the_field_description_and_both_rules() -> None:
    inner = structural_schema(Outer)["properties"]["inner"]
    assert inner["description"] == "The inner one."
    assert inner["type"] == "object"
    assert inner["properties"]["size"] == {
        "description": "A size.",
        "type": "integer",
        "default": 1,
    }
    assert inner["x-kubernetes-validations"] == [NOT_NEGATIVE.as_schema(), IMMUTABLE.as_schema()]


def test_optional_is_an_absent_field_not_null() -> None:
    schema = structural_schema(Outer)
    maybe = schema["properties"]["maybe"]
    assert maybe["type"] == "object"
    assert "default" not in maybe
    assert "nullable" not in maybe
    assert schema["required"] == ["inner"]


def test_maps_titles_and_forbidden_extras() -> None:
    schema = structural_schema(Outer)
    assert schema["properties"]["labels"] == {
        "description": "Some labels.",
        "type": "object",
        "default": {},
        "additionalProperties": {"type": "string"},
    }
    assert "title" not in schema
    assert "additionalProperties" not in schema


def test_rule_keys_read_rule_first() -> None:
    rule = CelRule("self.a > 0", "spec.a must be positive", field_path=".a")
    assert list(rule.as_schema()) == ["rule", "message", "fieldPath"]


class Union(BaseModel):
    value: int | str = Field(description="Either.")


class Exclusive(BaseModel):
    value: int = Field(gt=0, description="Positive.")


class UniqueSet(BaseModel):
    value: set[str] = Field(description="A set.")


@pytest.mark.parametrize("model", [Union, Exclusive, UniqueSet])
def test_what_a_crd_cannot_express_is_refused(model: type[BaseModel]) -> None:
    with pytest.raises(SchemaError):
        structural_schema(model)
