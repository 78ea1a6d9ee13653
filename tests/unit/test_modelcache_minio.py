"""The model cache in the MinIO tenant (``objectStorage: minio``): MinIO's STS, no keys.

Platform side: the setup identity and Job in the tenant's namespace, one
PolicyBinding per model granting only the cache policy, the fleets' gates.
Fleet side: the rclone containers' web identity (projected token, cluster CA,
STS endpoint) and the mesh bypass of the tenant's and the STS's ports.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import kubernetes_validate
import pytest

from function import modelcache, naming, plan
from function.composed import Need
from function.fleet import cache
from function.modelcache import minio
from function.models.input import DEFAULT_MINIO_CLIENT_IMAGE, FunctionInput
from function.models.platform import ModelSpec
from function.stack import build as build_stack
from tests.crdschema import validate as crd_validate
from tests.factories import cluster_context
from tests.unit.test_cache import env, final_desired, fleet_spec, objects, pod

MINIO = {"provider": "minio", "bucket": "ollama-models"}
TENANT_NS = "minio-tenant"


def minio_ctx(models: tuple[str, ...] = ("llama2", "mistral"), **components: str) -> Any:
    ctx = cluster_context("existing", components={"objectStorage": "minio", **components})
    return dataclasses.replace(ctx, models=models)


def stack_objects(ctx: Any) -> dict[str, Any]:
    """The cluster's stack and cache Objects by key (the Composed, not only the manifest)."""
    composed = [*build_stack(ctx), *modelcache.backend(ctx).composes(ctx, {})]
    return {c.key: c for c in composed if c.kind == "Object"}


def manifest(composed: Any) -> dict[str, Any]:
    return dict(composed.body["spec"]["forProvider"]["manifest"])


# --------------------------------------------------------------------------- platform side


def test_the_setup_identity_is_bound_to_an_admin_policy_in_the_tenant_namespace_only() -> None:
    objs = stack_objects(minio_ctx())
    sa = manifest(objs["existing-1-object-minio-cache-setup-serviceaccount"])
    assert sa["metadata"] == {"name": "ollama-cache-setup", "namespace": TENANT_NS}
    assert sa["automountServiceAccountToken"] is False
    binding = manifest(objs["existing-1-object-minio-cache-setup-binding"])
    assert binding["apiVersion"] == "sts.min.io/v1beta1"
    assert binding["metadata"]["namespace"] == TENANT_NS
    assert binding["spec"] == {
        "application": {"namespace": TENANT_NS, "serviceaccount": "ollama-cache-setup"},
        "policies": ["consoleAdmin"],
    }


def test_each_model_is_granted_only_the_cache_policy_for_its_service_account() -> None:
    objs = stack_objects(minio_ctx(("llama2", "mistral")))
    bindings = {
        k: manifest(c) for k, c in objs.items() if "minio-cache-binding" in k
    }
    assert sorted(bindings) == [
        "existing-1-object-minio-cache-binding-llama2",
        "existing-1-object-minio-cache-binding-mistral",
    ]
    for model in ("llama2", "mistral"):
        b = bindings[f"existing-1-object-minio-cache-binding-{model}"]
        assert b["metadata"] == {"name": f"ollama-cache-{model}", "namespace": TENANT_NS}
        assert b["spec"] == {
            "application": {"namespace": f"ollama-{model}", "serviceaccount": "ollama"},
            "policies": ["ollama-model-cache"],
        }


def test_a_models_grant_is_deleted_with_the_model_whatever_the_stack_policy() -> None:
    objs = stack_objects(minio_ctx(("llama2",)))
    grant = objs["existing-1-object-minio-cache-binding-llama2"]
    assert "Delete" in grant.body["spec"]["managementPolicies"]
    # the shared setup stays with the stack (stackDeletionPolicy Orphan by default)
    setup = objs["existing-1-object-minio-cache-setup"]
    assert "Delete" not in setup.body["spec"]["managementPolicies"]
    # removing the model from the cluster stops composing its grant
    fewer = stack_objects(minio_ctx(()))
    assert not [k for k in fewer if "minio-cache-binding" in k]
    assert "existing-1-object-minio-cache-setup" in fewer


def test_the_cache_policy_names_only_the_bucket_and_its_objects() -> None:
    document = json.loads(minio.cache_policy())
    resources = {r for s in document["Statement"] for r in s["Resource"]}
    assert resources == {"arn:aws:s3:::ollama-models", "arn:aws:s3:::ollama-models/*"}
    actions = {a for s in document["Statement"] for a in s["Action"]}
    assert actions == {
        "s3:GetBucketLocation",
        "s3:ListBucket",
        "s3:AbortMultipartUpload",
        "s3:GetObject",
        "s3:ListMultipartUploadParts",
        "s3:PutObject",
    }
    assert not [a for a in actions if "*" in a or a.startswith("admin:")]
    assert all(s["Effect"] == "Allow" for s in document["Statement"])


def test_the_setup_job_creates_bucket_and_policy_through_sts_without_keys() -> None:
    job = manifest(stack_objects(minio_ctx())["existing-1-object-minio-cache-setup"])
    assert job["metadata"] == {"name": "ollama-cache-setup", "namespace": TENANT_NS}
    spec = job["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "ollama-cache-setup"
    assert spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    assert container["image"] == DEFAULT_MINIO_CLIENT_IMAGE
    e = env(container)
    assert e["MC_HOST_tenant"] == "https://minio.minio-tenant.svc.cluster.local"  # no user:pass@
    assert "@" not in e["MC_HOST_tenant"]
    assert e["MC_STS_ENDPOINT_tenant"] == (
        "https://sts.minio-operator.svc.cluster.local:4223/sts/minio-tenant"
    )
    assert e["MC_WEB_IDENTITY_TOKEN_FILE_tenant"] == "/var/run/secrets/sts.min.io/token"  # noqa: S105
    assert e["SSL_CERT_FILE"] == "/var/run/secrets/sts.min.io/ca.crt"
    assert json.loads(e["CACHE_POLICY_DOCUMENT"]) == json.loads(minio.cache_policy())
    script = container["command"][-1]
    assert 'mc mb --ignore-existing "tenant/$CACHE_BUCKET"' in script
    assert 'mc admin policy create tenant "$CACHE_POLICY"' in script
    assert all("valueFrom" not in v for v in container["env"])
    assert "envFrom" not in container
    (token, ca) = next(v for v in spec["volumes"] if "projected" in v)["projected"]["sources"]
    assert token == {
        "serviceAccountToken": {"audience": "sts.min.io", "expirationSeconds": 3600, "path": "token"}
    }
    assert ca["configMap"]["name"] == "kube-root-ca.crt"
    assert not [v for v in spec["volumes"] if "secret" in v]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    kubernetes_validate.validate(job, "1.33", strict=True)


def test_the_setup_waits_for_the_operator_and_the_job_for_its_identity() -> None:
    objs = stack_objects(minio_ctx())
    gates = {k: {(g.key, g.need) for g in c.gates} for k, c in objs.items()}
    operator = ("existing-1-release-minio-operator", Need.READY)
    tenant = ("existing-1-release-minio-tenant", Need.EXISTS)
    assert {operator, tenant} <= gates["existing-1-object-minio-cache-setup-binding"]
    assert {operator, tenant} <= gates["existing-1-object-minio-cache-binding-llama2"]
    assert {
        tenant,
        ("existing-1-object-minio-cache-setup-serviceaccount", Need.EXISTS),
        ("existing-1-object-minio-cache-setup-binding", Need.EXISTS),
    } <= gates["existing-1-object-minio-cache-setup"]
    job = objs["existing-1-object-minio-cache-setup"].body["spec"]["readiness"]
    assert job["policy"] == "DeriveFromCelQuery"
    assert "succeeded" in job["celQuery"]


def test_policy_bindings_fit_the_operators_crd() -> None:
    found = [manifest(c) for k, c in stack_objects(minio_ctx()).items() if "binding" in k]
    assert len(found) == 3
    for m in found:
        assert crd_validate(m) == [], m
    # the validator knows the CRD: a wrong field is refused
    broken = {**found[0], "spec": {"application": {"namespace": "x"}, "policies": ["p"]}}
    assert crd_validate(broken)


def test_without_minio_there_is_no_tenant_cache() -> None:
    ctx = dataclasses.replace(cluster_context("existing"), models=("llama2",))
    assert not [k for k in stack_objects(ctx) if "minio-cache" in k]
    assert modelcache.backend(ctx).fleet_cache(ctx, {}) is None
    assert modelcache.backend(ctx).gates(ctx, "llama2", {}) == ()


def test_fleets_on_a_minio_cluster_name_the_tenant_cache_and_wait_for_their_grant() -> None:
    ctx = minio_ctx(("llama2",), serving="deployment")
    model = ModelSpec.model_validate({"name": "llama2", "model": "llama2"})
    spec = plan.fleet_spec(ctx, model)
    assert spec["cache"] == {"provider": "minio", "bucket": naming.MINIO_CACHE_BUCKET}
    fleet = plan._fleet(ctx, model, {})  # the gates are the point
    gates = {(g.key, g.need) for g in fleet.gates}
    assert ("existing-1-object-minio-cache-binding-llama2", Need.READY) in gates
    # a failed setup Job must not hold the model: the cache is best effort
    assert not [k for k, _ in gates if k == "existing-1-object-minio-cache-setup"]


def test_production_example_caches_in_its_tenant() -> None:
    docs = final_desired("production")
    fleets = [b for b in docs.values() if b["kind"] == "XOllamaFleet"]
    assert fleets
    for f in fleets:
        assert f["spec"]["cache"] == {"provider": "minio", "bucket": "ollama-models"}
    manifests = [
        b["spec"]["forProvider"]["manifest"] for b in docs.values() if b["kind"] == "Object"
    ]
    bindings = [m for m in manifests if m["kind"] == "PolicyBinding"]
    models = {f["spec"]["name"] for f in fleets}
    granted = {
        m["spec"]["application"]["namespace"]
        for m in bindings
        if m["spec"]["policies"] == ["ollama-model-cache"]
    }
    assert granted == {naming.model_namespace(m) for m in models}


def test_unpinned_minio_client_image_is_refused() -> None:
    from function.fleet import checks

    inputs = FunctionInput.model_validate({"spec": {"minioClientImage": "docker.io/minio/mc"}})
    assert [e.path for e in checks.image_errors(inputs)] == ["input.spec.minioClientImage"]
    assert re.fullmatch(
        r"docker\.io/minio/mc:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", DEFAULT_MINIO_CLIENT_IMAGE
    )


# --------------------------------------------------------------------------- fleet side


def test_rclone_reaches_the_tenant_with_a_projected_sts_token_and_no_keys() -> None:
    p = pod(fleet_spec(MINIO))
    restore, _pull, save = p["initContainers"]
    for c in (restore, save):
        e = env(c)
        assert e["RCLONE_CONFIG_CACHE_TYPE"] == "s3"
        assert e["RCLONE_CONFIG_CACHE_PROVIDER"] == "Minio"
        assert e["RCLONE_CONFIG_CACHE_ENV_AUTH"] == "true"
        assert e["RCLONE_CONFIG_CACHE_ENDPOINT"] == "https://minio.minio-tenant.svc.cluster.local"
        assert e["CACHE_URL"] == "cache:ollama-models/ollama"
        assert e["AWS_ENDPOINT_URL_STS"] == (
            "https://sts.minio-operator.svc.cluster.local:4223/sts/minio-tenant"
        )
        assert e["AWS_WEB_IDENTITY_TOKEN_FILE"] == "/var/run/secrets/sts.min.io/token"  # noqa: S105
        assert e["SSL_CERT_FILE"] == "/var/run/secrets/sts.min.io/ca.crt"
        assert e["AWS_ROLE_ARN"].startswith("arn:aws:iam::")
        # no key, secret or password anywhere; the only *TOKEN* names a file path
        assert all("valueFrom" not in v for v in c["env"])
        assert not [n for n in e if re.search(r"KEY|SECRET|PASSWORD|SESSION_TOKEN", n)]
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        assert mounts["cache-identity"]["mountPath"] == "/var/run/secrets/sts.min.io"
        assert mounts["cache-identity"]["readOnly"] is True
    identity = next(v for v in p["volumes"] if v["name"] == "cache-identity")
    token, ca = identity["projected"]["sources"]
    assert token["serviceAccountToken"]["audience"] == "sts.min.io"
    assert token["serviceAccountToken"]["expirationSeconds"] <= 3600
    assert ca == {
        "configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    }
    assert not [v for v in p["volumes"] if "secret" in v]
    # the serving container never sees the token
    serving = p["containers"][0]
    assert "cache-identity" not in {m["name"] for m in serving.get("volumeMounts", [])}
    assert p["automountServiceAccountToken"] is False
    assert p["serviceAccountName"] == "ollama"


def test_the_minio_service_account_carries_no_cloud_annotation() -> None:
    sa = objects(fleet_spec(MINIO))["model-object-serviceaccount"]
    assert "annotations" not in sa["metadata"]
    assert sa["automountServiceAccountToken"] is False


@pytest.mark.parametrize(
    ("mesh", "ports", "subnets"),
    [
        ("istio", "traffic.sidecar.istio.io/excludeOutboundPorts",
         "traffic.sidecar.istio.io/excludeOutboundIPRanges"),
        ("linkerd", "config.linkerd.io/skip-outbound-ports", "config.linkerd.io/skip-subnets"),
    ],
)
def test_init_containers_reach_the_tenant_and_sts_past_the_mesh(
    mesh: str, ports: str, subnets: str
) -> None:
    sts = objects(fleet_spec(MINIO, mesh=mesh))["model-object-statefulset"]
    annotations = sts["spec"]["template"]["metadata"]["annotations"]
    assert annotations[ports] == "443,4223"
    assert subnets not in annotations  # no link-local credential endpoint with MinIO
    custom = {
        **MINIO,
        "endpoint": "https://s3.storage.svc.cluster.local:9000",
        "stsEndpoint": "https://sts.minio-operator.svc.cluster.local:4223/sts/storage",
    }
    sts = objects(fleet_spec(custom, mesh=mesh))["model-object-statefulset"]
    assert sts["spec"]["template"]["metadata"]["annotations"][ports] == "443,4223,9000"
    e = env(pod(fleet_spec(custom, mesh=mesh))["initContainers"][0])
    assert e["RCLONE_CONFIG_CACHE_ENDPOINT"] == custom["endpoint"]
    assert e["AWS_ENDPOINT_URL_STS"] == custom["stsEndpoint"]


def test_minio_cache_pods_validate_against_kubernetes_schemas() -> None:
    checked = []
    for m in objects(fleet_spec(MINIO)).values():
        if m["apiVersion"] in {"v1", "apps/v1"}:
            kubernetes_validate.validate(m, "1.33", strict=True)
            checked.append(m["kind"])
    # the pod with the STS token volume is among what passed the filter
    assert sorted(checked) == ["Namespace", "Service", "ServiceAccount", "StatefulSet"]


def test_cloud_caches_mount_no_identity_volume() -> None:
    p = pod(fleet_spec({"provider": "s3", "bucket": "b-1", "region": "us-east-1"}))
    assert not [v for v in p["volumes"] if "projected" in v]
    assert cache.identity_env(
        cache.Cache.model_validate({"provider": "s3", "bucket": "b-1"})
    ) == []
