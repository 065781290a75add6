"""KEDA's objects in deploy/k8s: valid against the vendored CRD schemas, which refuse the
mistakes a cluster would (unknown fields, wrong types, missing fields)."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema
import pytest
from packaging.utils import canonicalize_name

from tests.deploy.manifests import CRD_SCHEMAS, K8S, SCHEMAS, render, validate_strict


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_each_schema_is_valid_and_says_where_it_comes_from():
    pins = {canonicalize_name(name): pin for name, pin in re.findall(
        r"^([\w.-]+)==(\S+)$", (SCHEMAS / "requirements-crd.txt").read_text(), re.M)}
    readme = (SCHEMAS / "README.md").read_text()
    for (api_version, kind), name in CRD_SCHEMAS.items():
        schema = json.loads((SCHEMAS / name).read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["properties"]["apiVersion"]["const"] == api_version, name
        assert schema["properties"]["kind"]["const"] == kind, name
        package = re.search(r"PyPI package (\S+)==(\S+) \(Apache-2.0", schema["$comment"])
        assert package, name
        assert pins[canonicalize_name(package.group(1))] == package.group(2), name
        assert name in readme


def scaled_object() -> dict[str, Any]:
    return copy.deepcopy(of_kind(render(K8S / "overlays" / "redis"), "ScaledObject")
                         ["o2c-worker-order"])


def service_monitor() -> dict[str, Any]:
    return copy.deepcopy(of_kind(render(K8S / "base"), "ServiceMonitor")["o2c-flower"])


def set_at(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return doc


DELETE = object()
#: (what is wrong, the object, the path of the change, the value set there, the word the
#: refusal must name).
BROKEN = [
    ("misspelled field", scaled_object, "spec.maxReplicaCont", 20, "maxReplicaCont"),
    ("misspelled field in a trigger", scaled_object, "spec.triggers.0.authRef",
     {"name": "o2c-redis"}, "authRef"),
    ("number where KEDA wants a string", scaled_object, "spec.triggers.0.metadata.listLength",
     20, "listLength"),
    ("string where the CRD wants a number", scaled_object, "spec.minReplicaCount", "1",
     "minReplicaCount"),
    ("key left empty in YAML (null)", scaled_object, "spec.maxReplicaCount", None,
     "maxReplicaCount"),
    ("missing scaleTargetRef", scaled_object, "spec.scaleTargetRef", DELETE, "scaleTargetRef"),
    ("missing trigger type", scaled_object, "spec.triggers.0.type", DELETE, "type"),
    ("status in a manifest", scaled_object, "status", {}, "status"),
    ("missing name", scaled_object, "metadata.name", DELETE, "name"),
    ("misspelled endpoint field", service_monitor, "spec.endpoints.0.intervall", "30s",
     "intervall"),
    ("interval as a number", service_monitor, "spec.endpoints.0.interval", 30,
     "interval"),
    ("unknown scheme", service_monitor, "spec.endpoints.0.scheme", "ftp",
     "scheme"),
    ("missing selector", service_monitor, "spec.selector", DELETE, "selector"),
]


@pytest.mark.parametrize(("build", "path", "value", "named"),
                         [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_the_schemas_refuse_a_broken_object(build, path, value, named):
    doc = build()
    validate_strict(doc)  # the object as shipped passes
    with pytest.raises(jsonschema.ValidationError) as refused:
        validate_strict(set_at(doc, path, value))
    assert named in f"{refused.value.message} at {refused.value.json_path}"
