"""Write the JSON Schemas of the CRD kinds that deploy/k8s uses (KEDA's ScaledObject and
TriggerAuthentication, the Prometheus Operator's ServiceMonitor) from cloudcoil's generated
pydantic models of those CRDs. Run by `make crd-schemas` in a throwaway venv that holds
requirements-crd.txt; the tests read only the JSON files.

The models accept what the CRDs accept, but as pydantic models they ignore unknown fields
and take null for any optional field, where `kubectl apply` (server-side strict field
validation, the default since Kubernetes 1.27) refuses an unknown field and the API server
silently prunes a null. So the schemas are tightened the same way on every kind:

- ``additionalProperties: false`` on every object that declares its fields; free-form maps
  (a trigger's ``metadata``, labels, annotations, ``params``) declare none and stay open;
- no ``null`` alternative (a key left empty in YAML is null: a value lost, not a default);
- ``apiVersion``, ``kind`` and ``metadata.name`` required, ``status`` not accepted.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication
from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor

HERE = Path(__file__).resolve().parent
#: Output file → (model, its distribution on PyPI, the project whose CRD it models).
SCHEMAS: dict[str, tuple[Any, str, str]] = {
    "keda-scaledobject.json": (
        ScaledObject, "cloudcoil.models.keda", "KEDA (https://github.com/kedacore/keda)"),
    "keda-triggerauthentication.json": (
        TriggerAuthentication, "cloudcoil.models.keda", "KEDA (https://github.com/kedacore/keda)"),
    "prometheus-operator-servicemonitor.json": (
        ServiceMonitor, "cloudcoil.models.prometheus_operator",
        "Prometheus Operator (https://github.com/prometheus-operator/prometheus-operator)"),
}


def drop_null(node: dict[str, Any]) -> None:
    """Remove the ``null`` branch pydantic adds to an optional field, and its null default."""
    branches = node.get("anyOf")
    if branches and {"type": "null"} in branches:
        rest = [b for b in branches if b != {"type": "null"}]
        del node["anyOf"]
        if len(rest) == 1:
            node.update(rest[0])
        else:
            node["anyOf"] = rest
    if "default" in node and node["default"] is None:
        del node["default"]


def tighten(node: Any) -> None:
    """Apply the module docstring's rules to every subschema, depth first."""
    if isinstance(node, list):
        for item in node:
            tighten(item)
        return
    if not isinstance(node, dict):
        return
    drop_null(node)
    if isinstance(node.get("title"), str):
        del node["title"]
    for key, value in node.items():
        if key in ("properties", "patternProperties", "$defs"):
            for subschema in value.values():
                tighten(subschema)
        elif key not in ("default", "enum", "const", "required"):
            tighten(value)
    if node.get("properties") and "additionalProperties" not in node:
        node["additionalProperties"] = False


def referenced(node: Any, into: set[str]) -> set[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            into.add(ref.removeprefix("#/$defs/"))
        for value in node.values():
            referenced(value, into)
    elif isinstance(node, list):
        for item in node:
            referenced(item, into)
    return into


def prune(schema: dict[str, Any]) -> None:
    """Drop the ``$defs`` nothing reaches any more (``status`` and what only it used)."""
    defs = schema["$defs"]
    keep: set[str] = set()
    todo = referenced(schema["properties"], set())
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo |= referenced(defs[name], set())
    schema["$defs"] = {name: defs[name] for name in sorted(keep)}


def schema_of(model: Any, distribution: str, upstream: str) -> dict[str, Any]:
    schema: dict[str, Any] = model.model_json_schema(by_alias=True)
    schema["properties"].pop("status", None)
    tighten(schema)
    schema["required"] = ["apiVersion", "kind", "metadata", *schema.get("required", [])]
    schema["$defs"]["ObjectMeta"]["required"] = ["name"]
    prune(schema)
    provenance = (
        f"{model.__name__} of {upstream}, as modelled by the PyPI package {distribution}=="
        f"{version(distribution)} (Apache-2.0; generated from the upstream CRD, Apache-2.0), "
        f"through pydantic {version('pydantic')} model_json_schema(by_alias=True), then "
        "tightened by tests/deploy/schemas/generate_crd_schemas.py (see its docstring). "
        "Regenerate with `make crd-schemas`; do not edit by hand.")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$comment": provenance, **schema}


def main() -> int:
    for name, (model, distribution, upstream) in SCHEMAS.items():
        text = json.dumps(schema_of(model, distribution, upstream), indent=1, sort_keys=True)
        (HERE / name).write_text(text + "\n")
        print(f"wrote {name} ({len(text)} characters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
