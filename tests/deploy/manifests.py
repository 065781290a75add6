"""Reading deploy/k8s as kustomize does, and validating what it yields, offline.

`render` is `kustomize build` for the features the layout uses (resources, directories of
them, strategic-merge patches of maps including ``$patch: delete``, JSON 6902 patches); a
slow test holds it to the real `kubectl kustomize`. `validate_strict` checks a built-in kind
with kubernetes-validate's bundled schemas and a CRD kind with the JSON Schema vendored in
tests/deploy/schemas/ (how they were made: schemas/README.md).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = Path(__file__).parent / "schemas"
#: (apiVersion, kind) of each CRD kind in deploy/k8s → its vendored schema.
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda-triggerauthentication.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "prometheus-operator-servicemonitor.json",
}


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization(directory: Path) -> dict[str, Any]:
    return load(directory / "kustomization.yaml")[0]


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects `kustomize build directory` prints (in no particular order)."""
    spec = kustomization(directory)
    docs: list[dict[str, Any]] = []
    for entry in spec["resources"]:
        path = directory / entry
        docs += render(path) if path.is_dir() else copy.deepcopy(load(path))
    for patch in spec.get("patches", []):
        if "path" in patch:
            _strategic_merge(docs, load(directory / patch["path"])[0])
        else:
            hits = [doc for doc in docs if _same(doc, patch["target"])]
            assert hits, patch
            for doc in hits:
                _json6902(doc, yaml.safe_load(patch["patch"]))
    return docs


def _same(doc: dict[str, Any], target: dict[str, Any]) -> bool:
    return (doc["kind"] == target["kind"]
            and ("name" not in target or doc["metadata"]["name"] == target["name"])
            and doc["apiVersion"].startswith(target.get("group", "")))


def _strategic_merge(docs: list[dict[str, Any]], body: dict[str, Any]) -> None:
    target = {"kind": body["kind"], "name": body["metadata"]["name"]}
    hits = [doc for doc in docs if _same(doc, target)]
    assert len(hits) == 1, body
    if body.get("$patch") == "delete":
        docs.remove(hits[0])
    else:
        _merge(hits[0], {k: v for k, v in body.items() if k not in ("apiVersion", "kind")})


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _pointer(doc: Any, path: str) -> tuple[Any, str]:
    *parents, last = path.lstrip("/").split("/")
    for part in parents:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc, last


def _json6902(doc: dict[str, Any], ops: list[dict[str, Any]]) -> None:
    for op in ops:
        parent, key = _pointer(doc, op["path"])
        if op["op"] in ("add", "replace"):
            if op["op"] == "replace":
                assert key in parent, op
            parent[key] = op["value"]
        elif op["op"] == "remove":
            del parent[key]
        elif op["op"] == "move":
            source, source_key = _pointer(doc, op["from"])
            parent[key] = source.pop(source_key)
        else:
            raise AssertionError(f"unsupported op {op}")


@cache
def crd_validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / CRD_SCHEMAS[api_version, kind]).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate_strict(doc: dict[str, Any]) -> None:
    """Raise a `jsonschema.ValidationError` (kubernetes-validate's is one) for a bad object."""
    if (doc["apiVersion"], doc["kind"]) in CRD_SCHEMAS:
        crd_validator(doc["apiVersion"], doc["kind"]).validate(doc)
    else:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
