"""The model cache: the identity chain from the model's ServiceAccount to its bucket, per cloud,
and the restore/save steps of the model's pods."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from function import fleet
from function.composed import Need
from function.errors import ClaimError
from function.fleet import cache, checks
from function.models.fleet import FleetSpec
from function.models.input import DEFAULT_CACHE_IMAGE, DEFAULT_OLLAMA_IMAGE, FunctionInput
from scripts.render import desired, load_docs, observed_map, request, run

ROOT = Path(__file__).resolve().parents[2]
XR = "llama2"
NS = "ollama-llama2"

S3 = {"provider": "s3", "bucket": "ollama-demo-aws-1-0123456789", "region": "us-east-1"}
GCS = {
    "provider": "gcs",
    "bucket": "ollama-demo-gcp-1-0123456789",
    "gcpServiceAccount": "ollama-cache-gcp-1-abcdef@proj-1234.iam.gserviceaccount.com",
}
AZURE = {
    "provider": "azureblob",
    "bucket": "models",
    "account": "ollamademo0123456789",
    "azureClientId": "00000000-0000-4000-8000-00000000c11d",
}
CACHES = {"s3": S3, "gcs": GCS, "azureblob": AZURE}


def fleet_spec(cache_block: dict[str, Any] | None = None, **extra: Any) -> FleetSpec:
    raw: dict[str, Any] = {
        "model": "llama3.1:8b",
        "target": {"providerConfigName": "pc", "cloud": "aws"},
        "mesh": "istio",
        **extra,
    }
    if cache_block is not None:
        raw["cache"] = cache_block
    return FleetSpec.model_validate(raw)


def objects(s: FleetSpec, inputs: FunctionInput | None = None) -> dict[str, dict[str, Any]]:
    """The fleet's manifests by Object name (``model-object-<name>`` -> manifest)."""
    out = {}
    for c in fleet.build(XR, s, inputs or FunctionInput()):
        if c.kind == "Object":
            out[c.key] = c.body["spec"]["forProvider"]["manifest"]
    return out


def pod(s: FleetSpec) -> dict[str, Any]:
    sts = objects(s)["model-object-statefulset"]
    return dict(sts["spec"]["template"]["spec"])


def env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


# --------------------------------------------------------------------------- fleet side


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("llama2", "registry.ollama.ai/library/llama2/latest"),
        ("llama3.1:8b", "registry.ollama.ai/library/llama3.1/8b"),
        ("user/model", "registry.ollama.ai/user/model/latest"),
        ("user/model:q4", "registry.ollama.ai/user/model/q4"),
        ("hf.co/org/repo:Q4_K_M", "hf.co/org/repo/Q4_K_M"),
        ("localhost:5000/ns/m", "localhost:5000/ns/m/latest"),
    ],
)
def test_manifest_path_follows_ollamas_store_layout(model: str, path: str) -> None:
    assert cache.manifest_path(model) == path


@pytest.mark.parametrize("provider", sorted(CACHES))
def test_restore_pull_save_run_in_that_order_on_the_model_volume(provider: str) -> None:
    p = pod(fleet_spec(CACHES[provider]))
    names = [c["name"] for c in p["initContainers"]]
    assert names == ["restore-model", "pull-model", "save-model"]
    restore, pull, save = p["initContainers"]
    assert restore["image"] == save["image"] == DEFAULT_CACHE_IMAGE
    assert pull["image"] == DEFAULT_OLLAMA_IMAGE
    for c in (restore, save):
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        assert mounts == {"models": "/models", "cache-scratch": "/tmp"}
        e = env(c)
        assert e["CACHE_URL"] == f"cache:{CACHES[provider]['bucket']}/ollama"
        assert e["OLLAMA_MANIFEST"] == "registry.ollama.ai/library/llama3.1/8b"
        assert e["OLLAMA_MODELS"] == "/models"
        assert e["RCLONE_CONFIG_CACHE_ENV_AUTH"] == "true"  # workload identity, never keys
        assert c["securityContext"]["runAsNonRoot"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert "rclone copyto" in restore["command"][-1]  # the manifest first, then its blobs
    assert "--files-from" in restore["command"][-1]
    # blobs are uploaded before the manifest that names them
    script = save["command"][-1]
    assert script.index('--files-from "$HOME/blobs"') < script.index(
        '--files-from "$HOME/manifest"'
    )
    assert p["serviceAccountName"] == "ollama"
    assert p["automountServiceAccountToken"] is False
    assert {"name": "cache-scratch", "emptyDir": {"sizeLimit": "64Mi"}} in p["volumes"]


@pytest.mark.parametrize(
    ("provider", "settings"),
    [
        ("s3", {"TYPE": "s3", "PROVIDER": "AWS", "REGION": "us-east-1", "NO_CHECK_BUCKET": "true"}),
        ("gcs", {"TYPE": "google cloud storage", "BUCKET_POLICY_ONLY": "true"}),
        ("azureblob", {"TYPE": "azureblob", "ACCOUNT": "ollamademo0123456789"}),
    ],
)
def test_rclone_remote_per_provider(provider: str, settings: dict[str, str]) -> None:
    restore = pod(fleet_spec(CACHES[provider]))["initContainers"][0]
    e = env(restore)
    for key, value in settings.items():
        assert e[f"RCLONE_CONFIG_CACHE_{key}"] == value


@pytest.mark.parametrize("provider", sorted(CACHES))
def test_no_static_credentials_in_the_pod(provider: str) -> None:
    p = pod(fleet_spec(CACHES[provider]))
    for c in [*p["initContainers"], *p["containers"]]:
        for e in c["env"]:
            assert "valueFrom" not in e, e  # nothing read from a Secret
            assert not re.search(r"KEY|SECRET|TOKEN|PASSWORD|SAS", e["name"]), e
        assert "envFrom" not in c
    assert not [v for v in p.get("volumes", []) if "secret" in v or "projected" in v]


def test_service_account_binds_the_cloud_identity() -> None:
    sa = {p: objects(fleet_spec(CACHES[p]))["model-object-serviceaccount"] for p in CACHES}
    for provider, manifest in sa.items():
        assert manifest["metadata"]["name"] == "ollama"
        assert manifest["metadata"]["namespace"] == NS
        assert manifest["automountServiceAccountToken"] is False, provider
    assert "annotations" not in sa["s3"]["metadata"]  # Pod Identity needs no annotation
    assert sa["gcs"]["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": GCS["gcpServiceAccount"]
    }
    assert sa["azureblob"]["metadata"]["annotations"] == {
        "azure.workload.identity/client-id": AZURE["azureClientId"]
    }


def test_aks_pods_carry_the_workload_identity_label_and_others_do_not() -> None:
    for provider in CACHES:
        sts = objects(fleet_spec(CACHES[provider]))["model-object-statefulset"]
        labels = sts["spec"]["template"]["metadata"]["labels"]
        expected = "true" if provider == "azureblob" else None
        assert labels.get("azure.workload.identity/use") == expected, provider
        # the selector never changes (it is immutable on a StatefulSet)
        assert "azure.workload.identity/use" not in sts["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize(
    ("mesh", "annotation"),
    [
        ("istio", "traffic.sidecar.istio.io/excludeOutboundIPRanges"),
        ("linkerd", "config.linkerd.io/skip-subnets"),
    ],
)
def test_init_containers_reach_credential_endpoints_past_the_mesh(
    mesh: str, annotation: str
) -> None:
    with_cache = objects(fleet_spec(S3, mesh=mesh))["model-object-statefulset"]
    annotations = with_cache["spec"]["template"]["metadata"]["annotations"]
    assert annotations[annotation] == "169.254.169.254/32,169.254.170.23/32"
    without = objects(fleet_spec(None, mesh=mesh))["model-object-statefulset"]
    assert annotation not in without["spec"]["template"]["metadata"]["annotations"]


def test_without_a_cache_the_pod_only_pulls() -> None:
    s = fleet_spec(None)
    objs = objects(s)
    assert "model-object-serviceaccount" not in objs
    p = pod(s)
    assert [c["name"] for c in p["initContainers"]] == ["pull-model"]
    assert "serviceAccountName" not in p
    assert "volumes" not in p


def test_the_statefulset_waits_for_the_service_account() -> None:
    built = {c.key: c for c in fleet.build(XR, fleet_spec(S3), FunctionInput())}
    gates = {(g.key, g.need) for g in built["model-object-statefulset"].gates}
    assert ("model-object-serviceaccount", Need.EXISTS) in gates


def test_knative_pods_restore_pull_and_save_in_init_containers() -> None:
    objs = objects(fleet_spec(AZURE, serving="knative"))
    assert "model-object-serviceaccount" in objs
    template = objs["model-object-knative-service"]["spec"]["template"]
    p = template["spec"]
    assert p["serviceAccountName"] == "ollama"
    assert [c["name"] for c in p["initContainers"]] == ["restore-model", "pull-model", "save-model"]
    assert p["containers"][0]["command"] == ["/bin/ollama", "serve"]  # the model is there
    assert template["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    # the model volume is the pod's emptyDir; the scratch space beside it
    assert {v["name"] for v in p["volumes"]} == {"models", "cache-scratch"}
    # without a cache, Knative pods keep pulling in the serving container
    plain = objects(fleet_spec(None, serving="knative"))["model-object-knative-service"]
    assert "initContainers" not in plain["spec"]["template"]["spec"]


def test_knative_serving_allows_init_containers() -> None:
    from function.stack.serving import KNATIVE_FEATURES

    assert KNATIVE_FEATURES["kubernetes.podspec-init-containers"] == "enabled"


@pytest.mark.parametrize("provider", sorted(CACHES))
def test_cache_pods_validate_against_kubernetes_schemas(provider: str) -> None:
    validated = []
    for manifest in objects(fleet_spec(CACHES[provider])).values():
        if manifest["apiVersion"] in {"v1", "apps/v1"}:
            kubernetes_validate.validate(manifest, "1.33", strict=True)
            validated.append(manifest)
    # The filter let the core objects through, the cache's pod among them.
    assert sorted(m["kind"] for m in validated) == [
        "Namespace",
        "Service",
        "ServiceAccount",
        "StatefulSet",
    ]
    [sts] = [m for m in validated if m["kind"] == "StatefulSet"]
    steps = [c["name"] for c in sts["spec"]["template"]["spec"]["initContainers"]]
    assert len(steps) == 3, steps  # restore, pull, save: the containers the cache adds


def test_unpinned_cache_image_is_refused() -> None:
    inputs = FunctionInput.model_validate({"spec": {"cacheImage": "docker.io/rclone/rclone"}})
    errors = checks.image_errors(inputs)
    assert [e.path for e in errors] == ["input.spec.cacheImage"]
    with pytest.raises(ClaimError, match="not pinned"):
        fleet.build(XR, fleet_spec(S3), inputs)


def test_the_copy_image_is_pinned_to_a_version() -> None:
    assert re.fullmatch(r"docker\.io/rclone/rclone:\d+\.\d+\.\d+", DEFAULT_CACHE_IMAGE)


# --------------------------------------------------------------------------- every cloud example

CREDENTIAL_KEYS = re.compile(
    r"(access_?key|secret_?(access_?)?key|client_?secret|password|sas_?token|"
    r"connection_?string|private_?key|credentials_?json)",
    re.IGNORECASE,
)

CREDENTIAL_VALUES = re.compile(r"(AKIA|ASIA)[A-Z0-9]{16}|-----BEGIN|AccountKey=|sig=")


def pairs(value: Any, path: str = "") -> list[tuple[str, str, Any]]:
    """Every (path, key, value) of the mappings in ``value``."""
    out: list[tuple[str, str, Any]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.append((path, k, v))
            out += pairs(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += pairs(v, f"{path}[{i}]")
    return out


def final_desired(case: str) -> dict[str, dict[str, Any]]:
    folder = ROOT / "examples" / case
    xr = load_docs(folder / "xr.yaml")[0]
    observed = observed_map(load_docs(sorted(folder.glob("observed-*.yaml"))[-1]))
    return desired(run(request(xr, observed)))


@pytest.mark.parametrize("case", ["aws", "gcp", "azure", "multicloud", "production"])
def test_no_static_credentials_in_any_composed_resource(case: str) -> None:
    docs = final_desired(case)
    assert docs
    for key, body in docs.items():
        for path, name, item in pairs(body):
            if isinstance(item, str):
                assert not CREDENTIAL_VALUES.search(item), (key, path, name)
            if CREDENTIAL_KEYS.search(name):
                # only the MinIO chart's "no key here, read the existing Secret" blanks,
                # and switches that turn keys off (the Azure account's Shared Key)
                off = name.endswith("Enabled") and item is False
                assert item == "" or off, (key, path, name)


@pytest.mark.parametrize(
    ("case", "provider"), [("gcp", "gcs"), ("azure", "azureblob"), ("aws", "s3")]
)
def test_example_fleets_carry_the_cache_of_their_cloud(case: str, provider: str) -> None:
    docs = final_desired(case)
    fleets = [b for b in docs.values() if b["kind"] == "XOllamaFleet"]
    assert fleets
    for f in fleets:
        assert f["spec"]["cache"]["provider"] == provider


def test_more_models_than_an_aks_identity_can_trust_are_refused() -> None:
    from function.validation import check_platform
    from tests.factories import platform_spec

    models = [{"name": f"m{i}", "model": "llama2"} for i in range(21)]
    errors = check_platform(platform_spec(("azure",), models=models), FunctionInput())
    assert [e.path for e in errors] == ["spec.clusters[0].bucket"]
    assert "at most 20" in errors[0].message
    assert not check_platform(platform_spec(("azure",), models=models[:20]), FunctionInput())
    # no bucket, no credentials: no limit
    spec = platform_spec(("azure",), models=models)
    raw = spec.model_dump(by_alias=True, mode="json", exclude_none=True)
    raw["clusters"][0]["bucket"] = {"enabled": False}
    assert not check_platform(type(spec).model_validate(raw), FunctionInput())


def test_observed_summary_keeps_one_level_of_nested_at_provider_scalars() -> None:
    from google.protobuf import struct_pb2

    from function.codec import observed_summary

    s = struct_pb2.Struct()
    s.update(
        {
            "kind": "Cluster",
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "atProvider": {
                    "endpoint": "1.2.3.4",
                    "workloadIdentityConfig": {"workloadPool": "p.svc.id.goog", "deep": {"x": 1}},
                    "nodePools": [{"name": "a"}],
                },
            },
        }
    )
    at_provider = observed_summary(s)["status"]["atProvider"]
    assert at_provider == {
        "endpoint": "1.2.3.4",
        "workloadIdentityConfig": {"workloadPool": "p.svc.id.goog"},
    }
