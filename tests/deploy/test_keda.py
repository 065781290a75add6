"""KEDA's objects in deploy/k8s: valid against the vendored CRD schemas, which refuse the
mistakes a cluster would (unknown fields, wrong types, missing fields), and each worker's
scaler wired to the broker the app uses, from the app's own Secret."""

from __future__ import annotations

import copy
import json
import re
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
from packaging.utils import canonicalize_name
from redis.connection import SSLConnection, parse_url

from tests.deploy.manifests import CRD_SCHEMAS, K8S, ROOT, SCHEMAS, render, validate_strict

OVERLAYS = ("redis", "rabbitmq")
SECRET = "o2c-workers"


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def secret_data(docs: list[dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = of_kind(docs, "Secret")[SECRET]["stringData"]
    return data


def queues_of(deployment: dict[str, Any]) -> list[str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    argv = container["command"]
    return str(argv[argv.index("-Q") + 1]).split(",")


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


def trigger_authentication() -> dict[str, Any]:
    return copy.deepcopy(of_kind(render(K8S / "overlays" / "redis"), "TriggerAuthentication")
                         ["o2c-redis"])


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
    ("secret ref without its key", trigger_authentication, "spec.secretTargetRef.0.key",
     DELETE, "key"),
    ("misspelled secretTargetRef", trigger_authentication, "spec.secretTargetRefs", [],
     "secretTargetRefs"),
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


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_worker_is_scaled_on_a_queue_it_consumes(overlay):
    docs = render(K8S / "overlays" / overlay)
    workers = {name: d for name, d in of_kind(docs, "Deployment").items()
               if name.startswith("o2c-worker-")}
    scalers = of_kind(docs, "ScaledObject")
    assert {s["spec"]["scaleTargetRef"]["name"] for s in scalers.values()} == set(workers)
    for scaler in scalers.values():
        (trigger,) = scaler["spec"]["triggers"]
        queue = trigger["metadata"]["listName" if overlay == "redis" else "queueName"]
        assert queue in queues_of(workers[scaler["spec"]["scaleTargetRef"]["name"]])


def redis_url_parts(url: str) -> dict[str, str]:
    """O2C_REDIS_URL as redis-py (so the app) reads it, in the form KEDA's redis scaler must
    be told it: what the Secret and the triggers hold for KEDA to read the app's queues."""
    parts = parse_url(url)
    tls = parts.get("connection_class") is SSLConnection
    return {"KEDA_REDIS_ADDRESS": f"{parts['host']}:{parts.get('port', 6379)}",
            "KEDA_REDIS_USERNAME": parts.get("username", ""),
            "KEDA_REDIS_PASSWORD": parts.get("password", ""),
            "KEDA_REDIS_TLS": "enable" if tls else "disable",
            "databaseIndex": str(parts.get("db", 0))}


def redis_scaler_mismatches(docs: list[dict[str, Any]]) -> list[str]:
    """Where the Redis overlay's scalers would not read the Redis, database and queue that
    the app's O2C_REDIS_URL names; empty when they do."""
    data = secret_data(docs)
    want = redis_url_parts(data["O2C_REDIS_URL"])
    problems = [f"{key} is {data.get(key)!r}, O2C_REDIS_URL says {want[key]!r}"
                for key in want if key.startswith("KEDA_") and data.get(key) != want[key]]
    auths = of_kind(docs, "TriggerAuthentication")
    for name, scaler in of_kind(docs, "ScaledObject").items():
        (trigger,) = scaler["spec"]["triggers"]
        meta = trigger["metadata"]
        if trigger["type"] != "redis" or set(meta) != {"listName", "listLength", "databaseIndex"}:
            problems.append(f"{name}: a redis trigger takes listName, listLength and "
                            f"databaseIndex, the rest from the Secret; it has {trigger}")
        elif meta["databaseIndex"] != want["databaseIndex"]:
            problems.append(f"{name}: databaseIndex is {meta['databaseIndex']!r}, "
                            f"O2C_REDIS_URL says {want['databaseIndex']!r}")
        auth = auths.get(trigger.get("authenticationRef", {}).get("name"))
        refs = {} if auth is None else {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
        expected = {"address": "KEDA_REDIS_ADDRESS", "username": "KEDA_REDIS_USERNAME",
                    "password": "KEDA_REDIS_PASSWORD", "tls": "KEDA_REDIS_TLS"}
        if {p: (r["name"], r["key"]) for p, r in refs.items()} != {
                p: (SECRET, key) for p, key in expected.items()}:
            problems.append(f"{name}: its TriggerAuthentication must map {expected} from the "
                            f"{SECRET} Secret; it maps {refs}")
    return problems


def test_the_redis_scalers_read_what_o2c_redis_url_names():
    docs = render(K8S / "overlays" / "redis")
    assert redis_scaler_mismatches(docs) == []
    for deployment in of_kind(docs, "Deployment").values():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert {"secretRef": {"name": SECRET}} in container["envFrom"]


@pytest.mark.parametrize(("url", "named"), [
    ("redis://:CHANGE-ME@redis:6379/3", "databaseIndex"),
    ("rediss://:CHANGE-ME@redis:6379/0", "KEDA_REDIS_TLS"),
    ("redis://:other@redis:6379/0", "KEDA_REDIS_PASSWORD"),
    ("redis://o2c:CHANGE-ME@redis:6379/0", "KEDA_REDIS_USERNAME"),
    ("redis://:CHANGE-ME@redis.example:6380/0", "KEDA_REDIS_ADDRESS"),
])
def test_a_url_changed_without_its_parts_is_caught(url, named):
    docs = render(K8S / "overlays" / "redis")
    secret_data(docs)["O2C_REDIS_URL"] = url
    problems = redis_scaler_mismatches(docs)
    assert len(problems) == (5 if named == "databaseIndex" else 1)
    assert all(named in p for p in problems)


def test_the_same_url_spelled_otherwise_still_matches():
    docs = render(K8S / "overlays" / "redis")
    secret_data(docs)["O2C_REDIS_URL"] = "redis://:CHANGE%2DME@redis"  # port and db defaulted
    assert redis_scaler_mismatches(docs) == []


def test_a_scaler_that_reads_its_connection_elsewhere_is_caught():
    docs = render(K8S / "overlays" / "redis")
    order = of_kind(docs, "ScaledObject")["o2c-worker-order"]
    order["spec"]["triggers"][0]["metadata"]["addressFromEnv"] = "O2C_REDIS_ADDRESS"
    del of_kind(docs, "ScaledObject")["o2c-worker-pricing"]["spec"]["triggers"][0][
        "authenticationRef"]
    problems = redis_scaler_mismatches(docs)
    assert sorted(p.split(":")[0] for p in problems) == ["o2c-worker-order", "o2c-worker-pricing"]


def test_the_rabbitmq_scalers_read_the_brokers_queues_from_o2c_broker_url():
    docs = render(K8S / "overlays" / "rabbitmq")
    assert list(of_kind(docs, "TriggerAuthentication")) == ["o2c-rabbitmq"]
    (ref,) = of_kind(docs, "TriggerAuthentication")["o2c-rabbitmq"]["spec"]["secretTargetRef"]
    assert ref == {"parameter": "host", "name": SECRET, "key": "O2C_BROKER_URL"}
    assert urlsplit(secret_data(docs)["O2C_BROKER_URL"]).scheme == "amqp"
    for name, scaler in of_kind(docs, "ScaledObject").items():
        (trigger,) = scaler["spec"]["triggers"]
        assert trigger == {
            "type": "rabbitmq", "authenticationRef": {"name": "o2c-rabbitmq"},
            "metadata": {"queueName": name.removeprefix("o2c-worker-"), "protocol": "amqp",
                         "mode": "QueueLength", "value": "20"}}, name


def test_the_rabbitmq_overlay_points_to_the_readme_on_rabbitmq():
    comment = (K8S / "overlays" / "rabbitmq" / "kustomization.yaml").read_text()
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert 'README, "RabbitMQ as the broker"' in comment
    assert "### RabbitMQ as the broker" in (ROOT / "README.md").read_text()
    assert "runs the fleet on RabbitMQ with the state on Redis" in readme
    assert "not supported yet" not in comment
