"""The Kubernetes manifests (deploy/k8s/): valid against Kubernetes' own schemas, both overlays
render, every container runs its Procfile line, and every workload is locked down, probed,
memory-limited and (workers) given more than the hard time limit to stop.

Strict validation uses kubernetes-validate's bundled schemas (offline). The CRD kinds
(ServiceMonitor, KEDA's ScaledObject) have no schema there: they are skipped in strict
validation and checked here for the fields we rely on instead.
"""

from __future__ import annotations

import copy
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from config.settings import get_settings
from o2c_workers.celery_app import celery_config

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("redis", "rabbitmq")
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("keda.sh/v1alpha1", "ScaledObject")}
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
UID = 10001  # the image's user (deploy/Dockerfile)


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization(directory: Path) -> dict[str, Any]:
    return load(directory / "kustomization.yaml")[0]


def base_docs() -> list[dict[str, Any]]:
    return [doc for name in kustomization(K8S / "base")["resources"]
            for doc in load(K8S / "base" / name)]


def _same(doc: dict[str, Any], target: dict[str, Any]) -> bool:
    return (doc["kind"] == target["kind"]
            and ("name" not in target or doc["metadata"]["name"] == target["name"])
            and doc["apiVersion"].startswith(target.get("group", "")))


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


def resolve(overlay: str) -> list[dict[str, Any]]:
    """The overlay rendered in Python (what `kustomize build` does with the features we use:
    resources, strategic-merge patches of maps, JSON 6902 patches)."""
    directory = K8S / "overlays" / overlay
    spec = kustomization(directory)
    assert spec["resources"] == ["../../base"]
    docs = copy.deepcopy(base_docs())
    for patch in spec.get("patches", []):
        if "path" in patch:
            body = load(directory / patch["path"])[0]
            target = {"kind": body["kind"], "name": body["metadata"]["name"]}
            hits = [doc for doc in docs if _same(doc, target)]
            assert len(hits) == 1, patch
            _merge(hits[0], {k: v for k, v in body.items() if k not in ("apiVersion", "kind")})
        else:
            hits = [doc for doc in docs if _same(doc, patch["target"])]
            assert hits, patch
            for doc in hits:
                _json6902(doc, yaml.safe_load(patch["patch"]))
    return docs


def validate_strict(doc: dict[str, Any]) -> None:
    if (doc["apiVersion"], doc["kind"]) in CRDS:
        return
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc["spec"]["template"]["spec"]
            for doc in docs if doc["kind"] in WORKLOADS}


def procfile() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name: shlex.split(rest) for name, _, rest in (line.partition(":") for line in lines)
            if rest}


def expand(argv: list[str], env: dict[str, str], pattern: str) -> list[str]:
    def value(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        assert default is not None, f"${name} is not set in the container's env"
        return default
    return [re.sub(pattern, value, arg) for arg in argv]


def test_every_manifest_is_valid_strictly():
    checked = 0
    for path in sorted((K8S / "base").glob("*.yaml")) + sorted(K8S.glob("overlays/*/*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load(path):
            if path.parent.parent.name == "overlays":
                continue  # a patch, validated after rendering (below)
            validate_strict(doc)
            checked += 1
    assert checked >= 25


def test_strict_validation_catches_a_typo():
    doc = copy.deepcopy(next(d for d in base_docs() if d["kind"] == "Deployment"))
    doc["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_strict(doc)


def test_the_base_lists_every_file_once():
    listed = kustomization(K8S / "base")["resources"]
    present = sorted(p.name for p in (K8S / "base").glob("*.yaml")
                     if p.name != "kustomization.yaml")
    assert sorted(listed) == present and len(set(listed)) == len(listed)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_resolves_to_valid_manifests(overlay):
    docs = resolve(overlay)
    for doc in docs:
        validate_strict(doc)
    secret = next(d for d in docs if d["kind"] == "Secret")
    scalers = [d for d in docs if d["kind"] == "ScaledObject"]
    assert {d["spec"]["scaleTargetRef"]["name"] for d in scalers} == {
        name for name in pod_specs(docs) if name.startswith("o2c-worker-")}
    broker = secret["stringData"].get("O2C_BROKER_URL")
    if overlay == "redis":
        # No broker URL: Settings.effective_broker_url falls back to the Redis URL.
        assert broker is None
        assert all(s["spec"]["triggers"][0]["type"] == "redis" for s in scalers)
    else:
        assert broker is not None and broker.startswith("amqp://")
        for scaler in scalers:
            trigger = scaler["spec"]["triggers"][0]
            assert trigger["type"] == "rabbitmq"
            assert trigger["metadata"] == {
                "queueName": scaler["spec"]["scaleTargetRef"]["name"].removeprefix("o2c-worker-"),
                "hostFromEnv": "O2C_BROKER_URL", "mode": "QueueLength", "value": "20"}
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
        if doc["kind"] in ("Secret", "ScaledObject"):
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


def test_worker_concurrency_defaults_are_the_procfiles():
    lines = procfile()
    for name, spec in pod_specs(base_docs()).items():
        if name.startswith("o2c-worker-"):
            env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
            default = re.search(r"WORKER_CONCURRENCY:-(\d+)", " ".join(lines[name[11:]]))
            assert default and env["WORKER_CONCURRENCY"] == default.group(1)


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
        if key not in ("O2C_SALESFORCE_ORG_IDS", "O2C_REDIS_ADDRESS", "FLOWER_SCRAPE_USER"):
            assert "CHANGE-ME" in value, key
