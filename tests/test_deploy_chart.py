"""The Helm chart: renders, lints, validates against the Kubernetes schemas, refuses what cannot work."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

helm = pytest.importorskip("helm_python")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

from collector.config import load_and_resolve  # noqa: E402
from connectors.kubernetes.rbac import REQUIRED_RBAC_RULES  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "evidence-collector"
RULES = ROOT / "deploy" / "prometheus" / "evidence-collector-rules.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "evidence-collector.json"
KUBE_VERSION = "1.32.0"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}

EVERYTHING: dict[str, Any] = {
    "replicaCount": 3,
    "image": {"digest": "sha256:" + "a" * 64},
    "database": {"type": "postgresql", "postgresql": {"existingSecret": "evidence-db", "urlKey": "url"}},
    "config": {
        "logLevel": "debug",
        "freshnessOverrides": {"soc2:CC7.1": {"ttl": "12h", "at_risk": "2h"}},
        "connectors": [
            {
                "name": "scans",
                "type": "container_scan",
                "schedule": {"interval": "30m"},
                "settings": {"paths": ["/var/lib/evidence/reports/*.json"]},
            },
            {
                "name": "cluster",
                "type": "kubernetes",
                "settings": {"kubeconfig": "/etc/evidence-collector/secrets/kube/config", "namespaces": ["ml"]},
            },
        ],
        "exports": [{"name": "monthly", "cron": "0 0 1 * *", "framework": "soc2", "destination": "s3://bundles/soc2"}],
    },
    "mappings": {"configMap": "custom-mappings", "items": [{"key": "soc2.yaml", "path": "catalogs/soc2.yaml"}]},
    "secretFiles": [{"name": "kube", "secretName": "prod-kubeconfig"}],
    "secretEnv": [{"name": "MLFLOW_TOKEN", "secretName": "mlflow", "key": "token"}],
    "extraEnv": [{"name": "AWS_REGION", "value": "eu-west-1"}],
    "signingKey": {"existingSecret": "export-signing", "key": "signing-key.pem"},
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/evidence"}},
    "imagePullSecrets": [{"name": "registry"}],
    "networkPolicy": {
        "metricsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443, "protocol": "TCP"}]}],
    },
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "grafanaDashboard": {"enabled": True},
    "podAnnotations": {"example.com/team": "compliance"},
}


@pytest.fixture(scope="module")
def chart() -> Any:
    return helm.Chart.load(CHART)


def render(chart: Any, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    out = chart.render(values or {}, name="ec", namespace="compliance", is_install=True)
    docs: list[dict[str, Any]] = []
    for template, text in out.items():
        if template.endswith(".yaml"):
            docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind}s rendered"
    return found[0]


def assert_valid(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {exc.message}")


def test_default_values_render_valid_manifests(chart: Any) -> None:
    docs = render(chart)
    assert sorted(d["kind"] for d in docs) == sorted(
        [
            "ConfigMap",
            "Deployment",
            "NetworkPolicy",
            "PersistentVolumeClaim",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
        ]
    )
    assert_valid(docs)
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}, "one SQLite writer at a time"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert (
        volumes["data"]["persistentVolumeClaim"]["claimName"] == one(docs, "PersistentVolumeClaim")["metadata"]["name"]
    )


def test_every_optional_part_renders_valid_manifests(chart: Any) -> None:
    docs = render(chart, EVERYTHING)
    kinds = {d["kind"] for d in docs}
    assert {"ServiceMonitor", "PrometheusRule"} <= kinds
    assert "PersistentVolumeClaim" not in kinds
    assert sum(1 for d in docs if d["kind"] == "ConfigMap") == 2
    assert_valid(docs)
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert "honorLabels" not in monitor["spec"]["endpoints"][0], "the collector exports no target label to keep"
    assert monitor["spec"]["endpoints"][0]["port"] == "http-metrics"
    dashboard = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard"))
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["evidence-collector.json"]) == json.loads(DASHBOARD.read_text())


def test_the_pod_is_locked_down_and_probed(chart: Any) -> None:
    pod = one(render(chart, EVERYTHING), "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/var/lib/evidence", "/tmp"}
    assert container["image"].endswith("@sha256:" + "a" * 64)
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }


def test_credentials_come_from_secrets(chart: Any) -> None:
    docs = render(chart, EVERYTHING)
    env = {e["name"]: e for e in one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["EVIDENCE_COLLECTOR_DATABASE__URL"]["valueFrom"]["secretKeyRef"] == {"name": "evidence-db", "key": "url"}
    assert env["MLFLOW_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow", "key": "token"}
    assert env["EVIDENCE_COLLECTOR_SIGNING_KEY_FILE"]["value"] == "/etc/evidence-collector/signing/signing-key.pem"
    account = one(docs, "ServiceAccount")
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/evidence"
    }
    assert "Secret" not in {d["kind"] for d in docs}, "the chart references Secrets, it never writes them"


def test_sqlite_with_more_than_one_replica_is_refused(chart: Any) -> None:
    with pytest.raises(helm.HelmRenderError, match=r"replicaCount > 1 needs database\.type=postgresql"):
        render(chart, {"replicaCount": 2})


def test_an_export_without_any_signing_key_is_refused(chart: Any) -> None:
    export = {"name": "monthly", "cron": "0 0 1 * *", "framework": "soc2", "destination": "/var/lib/evidence/out"}
    with pytest.raises(helm.HelmRenderError, match=r"config\.exports\[monthly\] needs a signing key"):
        render(chart, {"config": {"exports": [export]}})
    with pytest.raises(helm.HelmRenderError, match=r"mappings\.configMap or mappings\.volume, not both"):
        render(chart, {"mappings": {"configMap": "m", "volume": {"emptyDir": {}}}})


def test_postgresql_without_a_secret_is_refused(chart: Any) -> None:
    with pytest.raises(helm.HelmRenderError, match=r"database\.postgresql\.existingSecret"):
        render(chart, {"database": {"type": "postgresql"}})


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"replicaCount": "three"}, "/replicaCount"),
        ({"serviceMonitor": {"enabld": True}}, "enabld"),
        ({"database": {"type": "mysql"}}, "/database/type"),
        ({"prometheusRule": {"staleFor": "a while"}}, "/prometheusRule/staleFor"),
        ({"config": {"connectors": [{"name": "Bad Name", "type": "aws"}]}}, "/config/connectors/0/name"),
        ({"config": {"exports": [{"name": "q", "cron": "@daily", "framework": "soc2"}]}}, "/config/exports/0"),
        ({"secretFiles": [{"name": "Not_DNS", "secretName": "s"}]}, "/secretFiles/0/name"),
        ({"mappings": {"configmap": "typo"}}, "configmap"),
    ],
)
def test_bad_values_fail_the_schema_naming_the_key(chart: Any, values: dict[str, Any], named: str) -> None:
    with pytest.raises(helm.HelmValuesError) as info:
        chart.render(values, name="ec", namespace="compliance")
    assert named in str(info.value)


def test_the_chart_lints_clean(tmp_path: Path) -> None:
    for values in ({}, EVERYTHING):
        report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}")
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert problems == [], problems
        assert report["errors"] == []


def test_the_cluster_role_grants_exactly_what_the_kubernetes_connector_uses(chart: Any) -> None:
    role = one(render(chart, EVERYTHING), "ClusterRole")

    def normal(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
        return {
            (g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
        }

    assert normal(role["rules"]) == normal(REQUIRED_RBAC_RULES)
    binding = one(render(chart, EVERYTHING), "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "ec-evidence-collector", "namespace": "compliance"}
    ]
    assert "ClusterRole" not in {d["kind"] for d in render(chart, {**EVERYTHING, "rbac": {"create": False}})}


def test_cluster_wide_rbac_only_with_a_kubernetes_connector(chart: Any) -> None:
    without = {**EVERYTHING, "config": {**EVERYTHING["config"], "connectors": EVERYTHING["config"]["connectors"][:1]}}
    kinds = {d["kind"] for d in render(chart, without)}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    assert {"ClusterRole", "ClusterRoleBinding"} <= {d["kind"] for d in render(chart, EVERYTHING)}


def test_the_rendered_config_is_one_the_collector_accepts(chart: Any, tmp_path: Path) -> None:
    config_map = next(d for d in render(chart, EVERYTHING) if d["kind"] == "ConfigMap" and "config.yaml" in d["data"])
    path = tmp_path / "config.yaml"
    path.write_text(config_map["data"]["config.yaml"])
    mappings = tmp_path / "etc" / "evidence-collector" / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    path.write_text(path.read_text().replace("/etc/evidence-collector/mappings", str(mappings)))
    loaded = load_and_resolve(path)
    assert [i.config.name for i in loaded.instances] == ["scans", "cluster"]
    assert [e.name for e in loaded.app.exports] == ["monthly"]
    assert loaded.app.exports[0].sign_key_file == Path("/etc/evidence-collector/signing/signing-key.pem")
    assert loaded.app.http.listen == "0.0.0.0:9464"
    assert loaded.app.log.format == "json"
    assert [str(ref) for ref in loaded.overrides] == ["soc2:CC7.1"]


def test_the_prometheus_rule_is_the_tested_rule_file(chart: Any, tmp_path: Path) -> None:
    rendered = one(render(chart, {"prometheusRule": {"enabled": True}}), "PrometheusRule")
    assert rendered["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    tuned = one(render(chart, {"prometheusRule": {"enabled": True, "staleFor": "2h"}}), "PrometheusRule")
    stale = next(r for r in tuned["spec"]["groups"][0]["rules"] if r["alert"] == "EvidenceStale")
    assert stale["for"] == "2h"
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    out = tmp_path / "rules.yaml"
    out.write_text(yaml.safe_dump({"groups": tuned["spec"]["groups"]}))
    check = subprocess.run([promtool, "check", "rules", str(out)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_chart_dashboard_is_the_published_dashboard() -> None:
    assert (CHART / "files" / "evidence-collector-dashboard.json").read_bytes() == DASHBOARD.read_bytes()


# -- the pod as rendered, started on this machine: the real CLI proves the chart's names match the code's ----------


def pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def public_pem(key: Any, path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return path


def materialise(
    docs: list[dict[str, Any]],
    root: Path,
    secrets: dict[str, dict[str, bytes]],
    config_maps: dict[str, dict[str, str]],
) -> tuple[dict[str, str], dict[str, Path]]:
    """Lay out the rendered pod under ``root``: each volume mount a directory (or a file for a subPath) filled from
    the rendered ConfigMaps, the given external ConfigMaps and Secrets; every mount path in the container's env and
    in mounted ConfigMap files is rewritten to its local place. Returns the container env and the mount map."""
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    rendered = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    all_maps = {**config_maps, **rendered}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: root / m["mountPath"].lstrip("/") for m in container["volumeMounts"]}

    pattern = re.compile(
        r"(?<![\w./-])(" + "|".join(re.escape(m) for m in sorted(mounts, key=len, reverse=True)) + r")(?![\w.-])"
    )

    def localise(text: str) -> str:
        return pattern.sub(lambda match: str(mounts[match.group(1)]), text)

    for mount in container["volumeMounts"]:
        volume, local = volumes[mount["name"]], mounts[mount["mountPath"]]
        data: dict[str, bytes] = {}
        if "configMap" in volume:
            data = {k: localise(v).encode() for k, v in all_maps[volume["configMap"]["name"]].items()}
            items = volume["configMap"].get("items")
        elif "secret" in volume:
            data = secrets[volume["secret"]["secretName"]]
            items = volume["secret"].get("items")
        else:
            items = None
        files = {i["path"]: data[i["key"]] for i in items} if items else data
        if "subPath" in mount:
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(files[mount["subPath"]])
            continue
        local.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (local / name).parent.mkdir(parents=True, exist_ok=True)
            (local / name).write_bytes(content)
    env: dict[str, str] = {}
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = localise(entry["value"])
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secrets[ref["name"]][ref["key"]].decode()
    return env, mounts


def test_the_real_cli_runs_with_the_rendered_pod(chart: Any, tmp_path: Path) -> None:
    import sys
    from datetime import UTC, datetime

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from collector.export.signing import fingerprint
    from collector.export.verify import verify_bundle

    signing, export_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    custom = {
        f"{p.parent.name}__{p.name}": p.read_text()
        for directory in ("catalogs", "evidence", "crosswalks", "attestation-templates")
        for p in sorted((ROOT / "mappings" / directory).glob("*.yaml"))
    }
    title = "title: Detect vulnerabilities and risky config changes"
    assert title in custom["catalogs__soc2.yaml"]
    custom["catalogs__soc2.yaml"] = custom["catalogs__soc2.yaml"].replace(title, "title: Custom title from a ConfigMap")
    values = {
        "config": {
            "connectors": [
                {"name": "scans", "type": "container_scan", "settings": {"paths": ["/var/lib/evidence/reports/*"]}},
                {
                    "name": "drift",
                    "type": "model_monitor",
                    "settings": {
                        "prometheus": {"url": "http://127.0.0.1:1", "bearer_token": "${PROM_TOKEN}", "attempts": 1},
                        "monitors": [{"name": "latency", "query": "up", "bound": {"max": 1}}],
                    },
                },
            ],
            "exports": [
                {
                    "name": "default-key",
                    "cron": "0 0 1 * *",
                    "framework": "soc2",
                    "destination": "/var/lib/evidence/out",
                },
                {
                    "name": "own-key",
                    "cron": "0 0 1 * *",
                    "framework": "soc2",
                    "destination": "/var/lib/evidence/out",
                    "sign_key_file": "/etc/evidence-collector/secrets/export-key/key.pem",
                },
            ],
        },
        "signingKey": {"existingSecret": "export-signing"},
        "secretEnv": [{"name": "PROM_TOKEN", "secretName": "prometheus", "key": "token"}],
        "secretFiles": [{"name": "export-key", "secretName": "export-key"}],
        "mappings": {
            "configMap": "custom-mappings",
            "items": [{"key": k, "path": k.replace("__", "/")} for k in sorted(custom)],
        },
    }
    env, mounts = materialise(
        render(chart, values),
        tmp_path / "pod",
        secrets={
            "export-signing": {"signing-key.pem": pem(signing)},
            "export-key": {"key.pem": pem(export_key)},
            "prometheus": {"token": b"t0ken"},
        },
        config_maps={"custom-mappings": custom},
    )
    data = mounts["/var/lib/evidence"]
    shutil.copytree(ROOT / "tests" / "data" / "scans", data / "reports")
    pod_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT), **env}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "collector", *args], env=pod_env, capture_output=True, text=True)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    check = cli("config", "check")
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("configuration ok: 2 connectors")
    assert cli("collect", "--connector", "scans").returncode == 0
    controls = json.loads(cli("controls", "--framework", "soc2", "--format", "json").stdout)["controls"]
    assert {c["control"]: c["title"] for c in controls}["CC7.1"] == "Custom title from a ConfigMap"

    bundle = tmp_path / "soc2.zip"
    exported = cli("export", "--framework", "soc2", "--as-of", datetime.now(UTC).isoformat(), "--out", str(bundle))
    assert exported.returncode == 0, exported.stderr
    assert verify_bundle(bundle, signing.public_key()).fingerprint == fingerprint(signing.public_key())

    scheduled = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, pathlib; from collector.config import load_and_resolve; from collector.store import Store;"
            "from collector.export.schedule import run_scheduled_export;"
            "loaded = load_and_resolve(pathlib.Path(os.environ['EVIDENCE_COLLECTOR_CONFIG']));"
            "store = Store(loaded.app.database.url);"
            "print('outcomes', [run_scheduled_export(e, loaded, store).outcome for e in loaded.app.exports])",
        ],
        env=pod_env,
        capture_output=True,
        text=True,
    )
    assert "outcomes ['succeeded', 'succeeded']" in scheduled.stdout, scheduled.stdout + scheduled.stderr
    written = {p.name.split("-20")[0]: p for p in (data / "out").iterdir()}
    for name, key in (("default-key", signing), ("own-key", export_key)):
        assert verify_bundle(written[name], key.public_key()).fingerprint == fingerprint(key.public_key())


def values_reference() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("values_reference", ROOT / "deploy" / "helm" / "values_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_values_reference_is_current() -> None:
    reference = values_reference()
    assert (CHART / "VALUES.md").read_text() == reference.render(), "run python deploy/helm/values_reference.py"


def test_every_values_comment_describes_a_real_key_in_the_reference() -> None:
    reference = values_reference()
    text = (CHART / "values.yaml").read_text()
    described = reference.comments(text)
    assert described["signingKey.existingSecret"].startswith("Secret with the Ed25519 export signing key (PEM)")
    assert "EVIDENCE_COLLECTOR_SIGNING_KEY_FILE" in described["signingKey.existingSecret"]
    values = yaml.safe_load(text)
    for key in described:
        node = values
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, key
            node = node[part]
    rendered = reference.render()
    assert all(f"`{key}`" in rendered for key in described)


def test_custom_mappings_from_any_volume_are_named_in_the_config(chart: Any) -> None:
    docs = render(chart, {"mappings": {"volume": {"persistentVolumeClaim": {"claimName": "my-mappings"}}}})
    assert_valid(docs)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["mappings"]["persistentVolumeClaim"] == {"claimName": "my-mappings"}
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "mappings"]
    config = yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["config.yaml"])
    assert config["mappings"] == mount["mountPath"]
    assert "mappings" not in yaml.safe_load(
        next(d for d in render(chart) if d["kind"] == "ConfigMap")["data"]["config.yaml"]
    )
