"""Turn a pydantic model's JSON schema into a Kubernetes structural schema.

The API server accepts only a subset of OpenAPI v3 for CRDs: every node has a ``type``,
nothing is referenced (``$ref``) or combined (``anyOf``/``allOf``/``oneOf``), and a few
keywords mean something else (``exclusiveMinimum`` is a boolean there). So this inlines
references, turns ``X | None`` into plain ``X`` (an absent field, never ``null``), drops
``title`` and ``additionalProperties: false``, and refuses any keyword it does not know,
so that a model change the CRD cannot express fails here rather than at ``kubectl apply``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from dlq_operator.errors import SchemaError

# Keywords kept, in the order they are written out (for readable YAML).
_KEYWORDS = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "items",
    "properties",
    "required",
    "additionalProperties",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-validations",
)
_DROPPED = ("title",)
_COMBINATORS = ("$ref", "anyOf", "allOf")
_NULL = {"type": "null"}


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural schema of ``model``, with camelCase property names."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    definitions = schema.pop("$defs", {})
    return _convert(schema, definitions, where=model.__name__)


def _convert(node: dict[str, Any], definitions: dict[str, Any], where: str) -> dict[str, Any]:
    node = _inline(node, definitions, where)
    unknown = set(node) - set(_KEYWORDS) - set(_DROPPED)
    if unknown:
        raise SchemaError(f"{where}: keywords a CRD cannot take: {sorted(unknown)}")
    if node.get("default", ...) is None:
        del node["default"]  # `X | None = None` means "absent", which needs no default
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]  # forbidding extras is the pruning's job
    if not {"type", "x-kubernetes-int-or-string"} & set(node):
        raise SchemaError(f"{where}: no type")

    converted: dict[str, Any] = {}
    for keyword in _KEYWORDS:
        if keyword not in node:
            continue
        value = node[keyword]
        if keyword == "properties":
            value = {
                name: _convert(child, definitions, f"{where}.{name}")
                for name, child in value.items()
            }
        elif keyword == "x-kubernetes-validations":
            value = [_rule_in_reading_order(rule) for rule in value]
        elif keyword in ("items", "additionalProperties"):
            if not isinstance(value, dict):
                raise SchemaError(f"{where}: {keyword} must be a schema, not {value!r}")
            value = _convert(value, definitions, f"{where}[]")
        converted[keyword] = value
    return converted


def _rule_in_reading_order(rule: dict[str, str]) -> dict[str, str]:
    # pydantic sorts keys; the rule reads best first.
    return {key: rule[key] for key in ("rule", "message", "fieldPath") if key in rule}


def _inline(node: dict[str, Any], definitions: dict[str, Any], where: str) -> dict[str, Any]:
    """Replace a reference or an optional (``anyOf`` with null) by the schema it stands for.

    Keywords next to the reference (a field's description, default or rules) are merged
    over the referenced schema's; CEL rules of both are kept.
    """
    if not any(combinator in node for combinator in _COMBINATORS):
        return dict(node)
    siblings = {key: value for key, value in node.items() if key not in _COMBINATORS}
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[-1]]
    else:
        options = [option for option in node.get("anyOf", node.get("allOf", [])) if option != _NULL]
        if len(options) != 1:
            raise SchemaError(f"{where}: a union of several types cannot be a CRD schema")
        target = options[0]
    merged = _inline(target, definitions, where)
    rules = merged.get("x-kubernetes-validations", []) + siblings.get(
        "x-kubernetes-validations", []
    )
    merged |= siblings
    if rules:
        merged["x-kubernetes-validations"] = rules
    return merged
