"""The Kubernetes manifests (deploy/k8s/): valid against Kubernetes' own schemas and, for the
CRD kinds, against the CRDs' schemas vendored in schemas/; both overlays render, every
container runs its Procfile line, and every workload is locked down, probed, memory-limited
and (workers) given more than the hard time limit to stop. The KEDA scalers: test_keda.py.
"""

from __future__ import annotations

import copy
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from config.settings import get_settings
from o2c_workers import sizing
from o2c_workers.celery_app import celery_config
from o2c_workers.dev import procfile as procfile_types
from tests.deploy.manifests import K8S, kustomization, load, render, validate_strict

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ("redis", "rabbitmq")
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
UID = 10001  # the image's user (deploy/Dockerfile)


def base_docs() -> list[dict[str, Any]]:
    return render(K8S / "base")


def resolve(overlay: str) -> list[dict[str, Any]]:
    return render(K8S / "overlays" / overlay)


def pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc["spec"]["template"]["spec"]
            for doc in docs if doc["kind"] in WORKLOADS}


def procfile() -> dict[str, list[str]]:
    return {name: shlex.split(process.command)
            for name, process in procfile_types.load(ROOT / "Procfile").items()}


def expand(argv: list[str], env: dict[str, str], pattern: str) -> list[str]:
    def value(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        assert default is not None, f"${name} is not set in the container's env"
        return default
    return [re.sub(pattern, value, arg) for arg in argv]


def listed(directory: Path) -> tuple[list[Path], list[Path]]:
    """The files a kustomization names: its resources (directories left out) and its patches."""
    spec = kustomization(directory)
    resources = [directory / r for r in spec["resources"] if not (directory / r).is_dir()]
    patches = [directory / p["path"] for p in spec.get("patches", []) if "path" in p]
    return resources, patches


def test_every_manifest_is_valid_strictly():
    checked = 0
    for directory in (K8S / "base", *(K8S / "overlays" / o for o in OVERLAYS)):
        resources, _ = listed(directory)
        for path in resources:
            for doc in load(path):
                validate_strict(doc)
                checked += 1
    assert checked >= 27


def test_strict_validation_catches_a_typo():
    doc = copy.deepcopy(next(d for d in base_docs() if d["kind"] == "Deployment"))
    doc["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(jsonschema.ValidationError):
        validate_strict(doc)


def test_a_kind_without_a_schema_is_not_waved_through():
    doc = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledJob", "metadata": {"name": "x"}}
    with pytest.raises(kubernetes_validate.SchemaNotFoundError) as refused:
        validate_strict(doc)
    assert refused.value.kind == "ScaledJob"


@pytest.mark.parametrize("directory", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
def test_each_kustomization_names_every_file_once(directory):
    resources, patches = listed(K8S / directory)
    named = [p.name for p in resources + patches]
    present = sorted(p.name for p in (K8S / directory).glob("*.yaml")
                     if p.name != "kustomization.yaml")
    assert sorted(named) == present and len(set(named)) == len(named)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_resolves_to_valid_manifests(overlay):
    docs = resolve(overlay)
    for doc in docs:
        validate_strict(doc)
    kinds = [d["kind"] for d in docs]
    assert (kinds.count("ScaledObject"), kinds.count("TriggerAuthentication"),
            kinds.count("ServiceMonitor")) == (5, 1, 3)
    secret = next(d for d in docs if d["kind"] == "Secret")
    broker = secret["stringData"].get("O2C_BROKER_URL")
    if overlay == "redis":
        # No broker URL: Settings.effective_broker_url falls back to the Redis URL.
        assert broker is None
    else:
        assert broker is not None and broker.startswith("amqp://")
    assert "broker_url" in type(get_settings()).model_fields


@pytest.mark.slow
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kustomize_builds_each_overlay_as_resolved(overlay):
    if shutil.which("kustomize"):
        argv = ["kustomize", "build"]
    elif shutil.which("kubectl"):
        argv = ["kubectl", "kustomize"]
    else:
        pytest.skip("neither kustomize nor kubectl is installed")
    out = subprocess.run([*argv, str(K8S / "overlays" / overlay)], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    built = [doc for doc in yaml.safe_load_all(out) if doc]
    for doc in built:
        validate_strict(doc)

    def key(doc: dict[str, Any]) -> tuple[str, str]:
        return doc["kind"], doc["metadata"]["name"]
    assert sorted(map(key, built)) == sorted(map(key, resolve(overlay)))
    by_key = {key(d): d for d in resolve(overlay)}
    for doc in built:
        expected = by_key[key(doc)]
        if doc["kind"] in WORKLOADS:
            assert doc["spec"]["template"] == expected["spec"]["template"]
        if doc["kind"] in ("Secret", "ScaledObject", "TriggerAuthentication"):
            assert doc.get("stringData") == expected.get("stringData")
            assert doc.get("spec") == expected.get("spec")


def test_every_container_runs_its_procfile_line():
    lines = procfile()
    seen = set()
    for name, spec in pod_specs(base_docs()).items():
        (container,) = spec["containers"]
        role = name.removeprefix("o2c-").removeprefix("worker-")
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        argv = expand(container["command"], env, r"\$\((\w+)\)()")
        assert not container.get("args")
        assert argv == expand(lines[role], env, r"\$\{(\w+)(?::-([^}]*))?\}"), name
        seen.add(role)
    assert seen == set(lines)


def test_each_worker_states_its_queues_sized_default():
    seen = set()
    for name, spec in pod_specs(base_docs()).items():
        if name.startswith("o2c-worker-"):
            domain = name.removeprefix("o2c-worker-")
            env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
            assert env == {sizing.variable(domain): str(sizing.DEFAULTS[domain])}, name
            seen.add(domain)
    assert seen == set(sizing.DEFAULTS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_is_locked_down_probed_and_limited(overlay):
    hard_limit = celery_config(get_settings())["task_time_limit"]
    assert hard_limit == 300
    specs = pod_specs(resolve(overlay))
    assert len(specs) == 8
    for name, spec in specs.items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == UID, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"] + spec.get("initContainers", []):
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["runAsNonRoot"] is True and isinstance(sc["runAsUser"], int), name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], name
            env = {e["name"]: e["value"] for e in container.get("env", [])}
            for arg in expand(container["command"], env, r"\$\((\w+)\)()"):
                # Anything the process writes to must be on an emptyDir.
                if arg.startswith("--db="):
                    path = Path(arg.removeprefix("--db="))
                    assert "emptyDir" in volumes[mounts[str(path.parent)]], name
            assert container["resources"]["requests"]["cpu"], name
            assert container["resources"]["requests"]["memory"], name
            assert container["resources"]["limits"]["memory"], name
            assert container["livenessProbe"] and container["readinessProbe"], name
        (container,) = spec["containers"]
        sources = [s.get("configMapRef", s.get("secretRef"))["name"]
                   for s in container["envFrom"]]
        assert sources == ["o2c-workers", "o2c-workers"], name
        if name.startswith("o2c-worker-") or name == "o2c-web":
            mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
            multiproc = configmap()["PROMETHEUS_MULTIPROC_DIR"]
            assert mounts["metrics"] == multiproc and "emptyDir" in volumes["metrics"], name
        if name.startswith("o2c-worker-"):
            assert spec["terminationGracePeriodSeconds"] > hard_limit, name
            queue = name.removeprefix("o2c-worker-")
            ping = container["livenessProbe"]["exec"]["command"]
            assert ping[:2] == ["sh", "-c"]
            assert shlex.split(ping[2])[:5] == ["celery", "-A", "o2c_workers", "inspect", "ping"]
            assert f"-d {queue}@$HOSTNAME" in ping[2]
            # The probe waits for the answer no longer than the kubelet waits for the probe.
            assert container["livenessProbe"]["timeoutSeconds"] > 10
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert ports["metrics"] == int(configmap()["O2C_METRICS_PORT"])
            # SIGTERM reaches celery itself (no shell as PID 1): a warm shutdown.
            assert container["command"][0] == "celery"
        if name == "o2c-web":
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def configmap() -> dict[str, str]:
    (cm,) = [d for d in base_docs() if d["kind"] == "ConfigMap"]
    data: dict[str, str] = cm["data"]
    return data


def test_one_beat_that_never_runs_twice():
    beat = next(d for d in base_docs() if d["kind"] == "Deployment"
                and d["metadata"]["name"] == "o2c-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}


def test_budgets_services_monitors_and_network_policy_match_the_pods():
    docs = base_docs()
    pods = {name: next(d for d in docs if d["kind"] == "Deployment"
                       and d["metadata"]["name"] == name)["spec"]["template"]["metadata"]["labels"]
            for name in pod_specs(docs)}

    def selects(selector: dict[str, str]) -> set[str]:
        return {name for name, labels in pods.items()
                if selector.items() <= labels.items()}

    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    covered = [name for b in budgets for name in selects(b["spec"]["selector"]["matchLabels"])]
    assert sorted(covered) == sorted(pods)  # every pod, each by one budget
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    assert services["o2c-flower"]["spec"]["type"] == "ClusterIP"
    assert selects(services["o2c-flower"]["spec"]["selector"]) == {"o2c-flower"}
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    scraped: set[str] = set()
    for monitor in monitors:
        matched = [s for s in services.values()
                   if monitor["spec"]["selector"]["matchLabels"].items()
                   <= s["metadata"]["labels"].items()]
        assert len(matched) == 1, monitor["metadata"]["name"]
        ports = {p["name"] for p in matched[0]["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
        scraped |= selects(matched[0]["spec"]["selector"])
    # Every role that serves metrics is scraped; the beat serves none.
    assert scraped == set(pods) - {"o2c-beat"}
    (policy,) = [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert selects(policy["spec"]["podSelector"]["matchLabels"]) == set(pods)
    open_ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert open_ports == {8000, 5555, int(configmap()["O2C_METRICS_PORT"])}
    public = [rule for rule in policy["spec"]["ingress"] if "from" not in rule]
    assert [p["port"] for rule in public for p in rule["ports"]] == [8000]


def test_the_secret_is_a_template():
    (secret,) = [d for d in base_docs() if d["kind"] == "Secret"]
    for key, value in secret["stringData"].items():
        if key not in ("O2C_SALESFORCE_ORG_IDS", "FLOWER_SCRAPE_USER", "KEDA_REDIS_ADDRESS",
                       "KEDA_REDIS_USERNAME", "KEDA_REDIS_TLS"):
            assert "CHANGE-ME" in value, key


def secret_refs(node: Any) -> list[tuple[str, str]]:
    """Every (Secret name, key) an object reads: env valueFrom, a ServiceMonitor's basicAuth,
    a TriggerAuthentication's secretTargetRef (each a map with just ``name`` and ``key``,
    a ``parameter`` or an ``optional``)."""
    if isinstance(node, list):
        return [ref for item in node for ref in secret_refs(item)]
    if not isinstance(node, dict):
        return []
    if {"name", "key"} <= node.keys() <= {"name", "key", "parameter", "optional"}:
        return [(node["name"], node["key"])]
    return [ref for value in node.values() for ref in secret_refs(value)]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_secret_key_a_manifest_reads_is_in_the_template(overlay):
    docs = resolve(overlay)
    secrets = {d["metadata"]["name"]: d["stringData"] for d in docs if d["kind"] == "Secret"}
    refs = [ref for doc in docs if doc["kind"] != "Secret" for ref in secret_refs(doc)]
    assert len(refs) >= (6 if overlay == "redis" else 3)
    for name, key in refs:
        assert key in secrets[name], f"{overlay}: Secret {name} has no key {key}"
