"""The generated CRDs: in sync with crds/, structural, described, and defaulting like the models."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from dlq_operator import API_GROUP
from dlq_operator.api import (
    DEAD_LETTER_QUEUE,
    KINDS,
    REPROCESS_REQUEST,
    RETRY_POLICY,
    ResourceKind,
)
from dlq_operator.api.crdgen import HEADER, build_crd, check, main, render_crds

CRDS = Path(__file__).parents[2] / "crds"

FORBIDDEN_KEYWORDS = {"$ref", "$defs", "anyOf", "allOf", "oneOf", "not", "title", "uniqueItems"}


def test_crds_in_sync() -> None:
    """Fails when a model changed but crds/ was not regenerated."""
    assert check(CRDS) == [], "run: python -m dlq_operator.api.crdgen"


def test_check_reports_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check", "--output", str(tmp_path)]) == 1
    assert "out of date" in capsys.readouterr().out


def test_one_file_per_kind_with_the_header() -> None:
    rendered = render_crds()
    assert sorted(rendered) == sorted(f"{kind.plural}.{API_GROUP}.yaml" for kind in KINDS)
    for text in rendered.values():
        assert text.startswith(HEADER)
        assert yaml.safe_load(text)["kind"] == "CustomResourceDefinition"


@pytest.mark.parametrize(
    ("kind", "short_name"),
    [(DEAD_LETTER_QUEUE, "dlq"), (RETRY_POLICY, "rp"), (REPROCESS_REQUEST, "rpr")],
)
def test_names(kind: ResourceKind, short_name: str) -> None:
    spec = build_crd(kind)["spec"]
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == [short_name]
    assert spec["names"]["categories"] == ["dlq-operator"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}


def _schema(kind: ResourceKind) -> dict[str, Any]:
    return build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _nodes(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """Every schema node with its path and whether it is a named property."""
    for name, child in node.get("properties", {}).items():
        yield f"{path}.{name}", child, True
        yield from _nodes(child, f"{path}.{name}")
    for keyword in ("items", "additionalProperties"):
        if isinstance(node.get(keyword), dict):
            yield f"{path}[]", node[keyword], False
            yield from _nodes(node[keyword], f"{path}[]")


ALL_NODES = [
    (f"{kind.kind}{path}", node, is_property)
    for kind in KINDS
    for path, node, is_property in _nodes(_schema(kind), "")
]


@pytest.mark.parametrize(("path", "node", "is_property"), ALL_NODES, ids=[n[0] for n in ALL_NODES])
def test_structural_node(path: str, node: dict[str, Any], is_property: bool) -> None:
    assert not FORBIDDEN_KEYWORDS & set(node)
    assert {"type", "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields"} & set(
        node
    )
    if "properties" in node:
        assert "additionalProperties" not in node, "a node is an object or a map, not both"
    if is_property and not path.endswith(".metadata"):
        assert node.get("description", "").strip(), "kubectl explain needs a description"


def test_metadata_is_left_to_the_api_server() -> None:
    for kind in KINDS:
        assert _schema(kind)["properties"]["metadata"] == {"type": "object"}


def test_every_cel_rule_names_its_field() -> None:
    rules = [rule for _, node, _ in ALL_NODES for rule in node.get("x-kubernetes-validations", [])]
    assert len(rules) >= 15
    for rule in rules:
        assert set(rule) <= {"rule", "message", "fieldPath"}
        assert rule["message"].startswith("spec."), rule


def test_status_keeps_kopf_bookkeeping_and_has_no_defaults() -> None:
    for kind in KINDS:
        status = _schema(kind)["properties"]["status"]
        assert status["x-kubernetes-preserve-unknown-fields"] is True
        assert not [path for path, node, _ in _nodes(status, "status") if "default" in node]


@pytest.mark.parametrize(
    ("kind", "path", "list_type", "keys"),
    [
        (DEAD_LETTER_QUEUE, ("status", "conditions"), "map", ["type"]),
        (RETRY_POLICY, ("status", "conditions"), "map", ["type"]),
        (REPROCESS_REQUEST, ("status", "conditions"), "map", ["type"]),
        (REPROCESS_REQUEST, ("status", "checkpoint"), "map", ["partition"]),
        (RETRY_POLICY, ("spec", "nonRetryableErrorCodes"), "set", None),
        (REPROCESS_REQUEST, ("spec", "selector", "partitions"), "set", None),
    ],
)
def test_list_types(
    kind: ResourceKind, path: tuple[str, ...], list_type: str, keys: list[str] | None
) -> None:
    node = _schema(kind)
    for name in path:
        node = node["properties"][name]
    assert node["x-kubernetes-list-type"] == list_type
    assert node.get("x-kubernetes-list-map-keys") == keys
    if keys:
        assert set(keys) <= set(node["items"]["required"])


def test_printer_columns() -> None:
    columns = {
        kind.kind: [
            column["name"]
            for column in build_crd(kind)["spec"]["versions"][0]["additionalPrinterColumns"]
        ]
        for kind in KINDS
    }
    assert columns == {
        "DeadLetterQueue": [
            "Source",
            "Topic",
            "Partitions",
            "Unresolved",
            "Alert",
            "Worker",
            "Ready",
            "Reason",
            "Age",
        ],
        "RetryPolicy": ["MaxRetries", "InitialDelay", "MaxDelay", "UsedBy", "Age"],
        "ReprocessRequest": ["DLQ", "Phase", "Replayed", "Matched", "DryRun", "Age"],
    }


def test_spec_is_required_only_where_something_in_it_is() -> None:
    assert _schema(DEAD_LETTER_QUEUE)["required"] == ["spec"]
    assert _schema(REPROCESS_REQUEST)["required"] == ["spec"]
    assert "required" not in _schema(RETRY_POLICY)


def apply_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """Structural defaulting as the API server does it: set missing defaults, then descend."""
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name, child in properties.items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
        for name, child_value in value.items():
            child_schema = properties.get(name, schema.get("additionalProperties"))
            if isinstance(child_schema, dict):
                apply_defaults(child_value, child_schema)
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            apply_defaults(item, schema["items"])
    return value


SPECS = [
    (DEAD_LETTER_QUEUE, {"sourceTopic": "orders"}),
    (DEAD_LETTER_QUEUE, {"sourceTopic": "orders", "topic": {"name": "dead", "parked": {}}}),
    (DEAD_LETTER_QUEUE, {"sourceTopic": "orders", "retry": {}, "alerting": {"enabled": False}}),
    (DEAD_LETTER_QUEUE, {"sourceTopic": "orders", "retry": {"policyRef": {"name": "fast"}}}),
    (RETRY_POLICY, {}),
    (RETRY_POLICY, {"backoff": {"jitter": 0.5}}),
    (REPROCESS_REQUEST, {"deadLetterQueueRef": {"name": "orders"}}),
    (
        REPROCESS_REQUEST,
        {"deadLetterQueueRef": {"name": "orders"}, "selector": {"maxMessages": 5}, "target": {}},
    ),
]


@pytest.mark.parametrize(("kind", "spec"), SPECS, ids=[f"{k.kind}{s}" for k, s in SPECS])
def test_api_server_defaults_equal_model_defaults(kind: ResourceKind, spec: dict[str, Any]) -> None:
    crd_spec = _schema(kind)["properties"]["spec"]
    defaulted_by_api_server = apply_defaults(copy.deepcopy(spec), crd_spec)
    defaulted_by_model = kind.spec.model_validate(spec).model_dump(mode="json", exclude_none=True)
    assert defaulted_by_api_server == defaulted_by_model


def test_omitted_spec_gets_every_default() -> None:
    defaulted = apply_defaults({}, _schema(RETRY_POLICY))
    assert defaulted["spec"] == RETRY_POLICY.spec().model_dump(mode="json", exclude_none=True)


@pytest.mark.parametrize(
    ("model_path", "value"),
    [
        ((DEAD_LETTER_QUEUE, "topic", "partitions"), 3),
        ((DEAD_LETTER_QUEUE, "topic", "retentionMs"), 604800000),
        ((DEAD_LETTER_QUEUE, "alerting", "renotifyInterval"), "1h"),
        ((DEAD_LETTER_QUEUE, "deletionPolicy"), "Retain"),
        ((RETRY_POLICY, "backoff", "maxDelay"), "60s"),
        ((RETRY_POLICY, "maxRetries"), 3),
        ((REPROCESS_REQUEST, "source"), "dlq"),
        ((REPROCESS_REQUEST, "target", "resetRetryCount"), True),
    ],
)
def test_documented_defaults(model_path: tuple[Any, ...], value: Any) -> None:
    kind, *names = model_path
    node = _schema(kind)["properties"]["spec"]
    for name in names:
        node = node["properties"][name]
    assert node["default"] == value


def _all_models(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    yield model
    for field in model.model_fields.values():
        for candidate in _annotation_models(field.annotation):
            yield from _all_models(candidate)


def _annotation_models(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for argument in getattr(annotation, "__args__", ()):
        yield from _annotation_models(argument)


@pytest.mark.parametrize("kind", KINDS, ids=[kind.kind for kind in KINDS])
def test_every_model_field_is_described(kind: ResourceKind) -> None:
    for model in {*_all_models(kind.spec), *_all_models(kind.status)}:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"
