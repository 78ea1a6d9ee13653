"""The model cache: the identity chain from the model's ServiceAccount to its bucket, per cloud,
and the restore/save steps of the model's pods."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from function import clouds, fleet, modelcache, naming
from function.composed import UNKNOWN, Composed, Need
from function.context import ClusterContext
from function.errors import ClaimError
from function.fleet import cache, checks
from function.modelcache import s3
from function.models.fleet import FleetSpec
from function.models.input import DEFAULT_CACHE_IMAGE, DEFAULT_OLLAMA_IMAGE, FunctionInput
from function.readiness import select
from scripts.render import desired, load_docs, observed_map, request, run
from tests.factories import cluster_context, decoded, reporting

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


# --------------------------------------------------------------------------- EKS chain


def composed(ctx: ClusterContext, observed: dict[str, Any]) -> list[Composed]:
    """What the planner composes for the cluster's cloud and its model cache."""
    return [*clouds.build(ctx, observed), *modelcache.backend(ctx).composes(ctx, observed)]


def aws_chain(
    observed: dict[str, dict[str, Any]] | None = None, models: tuple[str, ...] = ("llama2",)
) -> dict[str, Composed]:
    ctx = dataclasses.replace(cluster_context("aws"), models=models)
    return {c.key: c for c in composed(ctx, observed or {})}


BUCKET_ARN = "arn:aws:s3:::ollama-demo-abc12-aws-1-9f2e0c1d7a"


def bucket_reported(arn: str = BUCKET_ARN) -> dict[str, Any]:
    return reporting("aws-1-bucket", "Bucket", arn=arn)


def fp(c: Composed) -> dict[str, Any]:
    return dict(c.body["spec"]["forProvider"])


def test_eks_pod_identity_chain_from_service_account_to_bucket() -> None:
    chain = aws_chain(bucket_reported(), models=("llama2", "mistral"))
    agent = chain["aws-1-pod-identity-agent"]
    assert (agent.api_version, agent.kind) == ("eks.aws.upbound.io/v1beta1", "Addon")
    assert fp(agent)["addonName"] == "eks-pod-identity-agent"
    assert fp(agent)["clusterName"] == "eks-prod"
    assert fp(agent)["preserve"] is True  # the cluster is not the platform's

    role = chain["aws-1-cache-role"]
    trust = json.loads(fp(role)["assumeRolePolicy"])
    assert trust["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
        }
    ]

    policy = chain["aws-1-cache-policy"]
    assert (policy.api_version, policy.kind) == ("iam.aws.upbound.io/v1beta1", "RolePolicy")
    assert fp(policy)["roleSelector"]["matchLabels"] == role.body["metadata"]["labels"]

    for model in ("llama2", "mistral"):
        assoc = chain[f"aws-1-model-identity-{model}"]
        assert (assoc.api_version, assoc.kind) == (
            "eks.aws.upbound.io/v1beta1",
            "PodIdentityAssociation",
        )
        assert fp(assoc)["namespace"] == naming.model_namespace(model) == f"ollama-{model}"
        assert fp(assoc)["serviceAccount"] == cache.SERVICE_ACCOUNT == "ollama"
        assert fp(assoc)["clusterName"] == "eks-prod"
        assert fp(assoc)["roleArnSelector"]["matchLabels"] == role.body["metadata"]["labels"]
        assert fp(assoc)["roleArnSelector"]["matchControllerRef"] is True


def test_eks_policy_names_only_that_bucket() -> None:
    chain = aws_chain(bucket_reported())
    document = json.loads(fp(chain["aws-1-cache-policy"])["policy"])
    resources = {r for s in document["Statement"] for r in [s["Resource"]]}
    assert resources == {BUCKET_ARN, f"{BUCKET_ARN}/*"}
    actions = {a for s in document["Statement"] for a in s["Action"]}
    assert actions == {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"}
    assert all(s["Effect"] == "Allow" for s in document["Statement"])
    text = fp(chain["aws-1-cache-policy"])["policy"]
    assert '"*"' not in text
    assert "s3:*" not in text
    assert "Delete" not in text  # the cache only grows; nothing it runs deletes


def test_eks_policy_waits_for_the_bucket_arn_and_is_never_sent_without_it() -> None:
    chain = aws_chain({})
    policy = chain["aws-1-cache-policy"]
    assert [(g.key, g.need, g.field) for g in policy.gates] == [
        ("aws-1-bucket", Need.REPORTED, "arn")
    ]
    held = select(chain.values(), {})
    assert "aws-1-cache-policy" in held.held
    # once reported, it is composed with the reported ARN
    observed = bucket_reported()
    chain = aws_chain(observed)
    assert "aws-1-cache-policy" in {c.key for c in select(chain.values(), observed).emitted}
    # a policy that exists while its bucket stops reporting the ARN keeps the policy it
    # carries (withdrawing it would delete it; an empty ARN would rewrite it)
    carried = {c.key: c for c in select(chain.values(), observed).emitted}[
        "aws-1-cache-policy"
    ].body
    assert BUCKET_ARN in carried["spec"]["forProvider"]["policy"]
    observed = {
        **bucket_reported(),
        "aws-1-cache-policy": decoded({"kind": "RolePolicy", **carried}),
    }
    observed["aws-1-bucket"] = decoded({"kind": "Bucket", "status": {"atProvider": {}}})
    chain = aws_chain(observed)
    assert chain["aws-1-cache-policy"].body != carried  # built without the ARN ...
    kept = {c.key: c for c in select(chain.values(), observed).emitted}
    assert kept["aws-1-cache-policy"].body == carried  # ... but sent as it exists


def test_associations_wait_for_the_agent() -> None:
    chain = aws_chain(bucket_reported())
    gates = [(g.key, g.need) for g in chain["aws-1-model-identity-llama2"].gates]
    assert gates == [("aws-1-pod-identity-agent", Need.READY)]


@pytest.mark.parametrize("extra", [{"bucket": {"enabled": False}}, {}])
def test_no_bucket_no_identity_chain_and_no_cache(extra: dict[str, Any]) -> None:
    components = {"objectStorage": "none"} if not extra else None
    ctx = dataclasses.replace(
        cluster_context("aws", components=components, **extra), models=("llama2",)
    )
    keys = {c.key for c in composed(ctx, bucket_reported())}
    # the EBS CSI driver's identity (and the agent it needs) is not the cache's
    assert not {k for k in keys if "cache" in k or "model-identity" in k}
    assert modelcache.backend(ctx).fleet_cache(ctx, bucket_reported()) is None
    assert modelcache.backend(ctx).gates(ctx, "llama2", {}) == ()


def test_aws_fleet_cache_block() -> None:
    ctx = cluster_context("aws")
    block = s3.fleet_cache(ctx, {})
    assert block == {
        "provider": "s3",
        "bucket": naming.bucket_name(ctx.platform.uid, ctx.platform.name, ctx.name),
        "region": "us-east-1",
    }
    assert [(g.key, g.need) for g in s3.gates(ctx, "llama2", {})] == [
        ("aws-1-pod-identity-agent", Need.READY),
        ("aws-1-cache-policy", Need.READY),
        ("aws-1-model-identity-llama2", Need.READY),
    ]


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


def test_aws_example_composes_the_chain_and_the_fleet_names_the_bucket() -> None:
    docs = final_desired("aws")
    kinds = {(b["apiVersion"], b["kind"]) for b in docs.values()}
    assert ("eks.aws.upbound.io/v1beta1", "Addon") in kinds
    assert ("eks.aws.upbound.io/v1beta1", "PodIdentityAssociation") in kinds
    assert ("iam.aws.upbound.io/v1beta1", "RolePolicy") in kinds
    fleets = [b for b in docs.values() if b["kind"] == "XOllamaFleet"]
    assert fleets
    bucket = next(b for k, b in docs.items() if b["kind"] == "Bucket" and k.endswith("-bucket"))
    for f in fleets:
        assert f["spec"]["cache"]["provider"] == "s3"
        assert (
            f["spec"]["cache"]["bucket"] == bucket["metadata"]["annotations"][naming.EXTERNAL_NAME]
        )


# --------------------------------------------------------------------------- GKE chain


def gcp_chain(
    observed: dict[str, dict[str, Any]] | None = None, models: tuple[str, ...] = ("llama2",)
) -> dict[str, Composed]:
    ctx = dataclasses.replace(cluster_context("gcp"), models=models)
    return {c.key: c for c in composed(ctx, observed or {})}


reports = reporting  # one Ready resource reporting atProvider, decoded as from a request


NODE_EMAIL = "ollama-gcp-1-aaaaaa@proj-1234.iam.gserviceaccount.com"
CACHE_EMAIL = "ollama-cache-gcp-1-bbbbbb@proj-1234.iam.gserviceaccount.com"
GCP_REPORTED = {
    **reports(
        "gcp-1-node-sa", "ServiceAccount", email=NODE_EMAIL, member=f"serviceAccount:{NODE_EMAIL}"
    ),
    **reports(
        "gcp-1-cache-sa",
        "ServiceAccount",
        email=CACHE_EMAIL,
        member=f"serviceAccount:{CACHE_EMAIL}",
    ),
    **reports(
        "gcp-1-gke-cluster",
        "Cluster",
        workloadIdentityConfig={"workloadPool": "proj-1234.svc.id.goog"},
    ),
}


def test_gke_node_service_account_gets_only_the_documented_node_roles() -> None:
    chain = gcp_chain(GCP_REPORTED)
    grants = [c for c in chain.values() if c.kind == "ProjectIAMMember"]
    assert sorted(fp(c)["role"] for c in grants) == [
        "roles/artifactregistry.reader",
        "roles/container.defaultNodeServiceAccount",
    ]
    for c in grants:
        assert fp(c)["member"] == f"serviceAccount:{NODE_EMAIL}"  # the nodes', never the cache's
        assert [(g.key, g.need, g.field) for g in c.gates] == [
            ("gcp-1-node-sa", Need.REPORTED, "member")
        ]
    # without a reported member the grants are held, never sent with an empty member
    held = select(gcp_chain({}).values(), {})
    assert {"gcp-1-node-sa-default-node", "gcp-1-node-sa-artifact-reader"} <= set(held.held)


def test_gke_node_roles_do_not_depend_on_the_bucket() -> None:
    ctx = dataclasses.replace(cluster_context("gcp", bucket={"enabled": False}), models=("m",))
    kinds = [c.kind for c in composed(ctx, GCP_REPORTED)]
    assert kinds.count("ProjectIAMMember") == 2
    assert "BucketIAMMember" not in kinds
    assert "ServiceAccountIAMMember" not in kinds
    pool = {c.key: c for c in composed(ctx, GCP_REPORTED)}["gcp-1-nodepool"]
    assert "workloadMetadataConfig" not in fp(pool)["nodeConfig"]


def test_gke_workload_identity_chain_from_service_account_to_bucket() -> None:
    chain = gcp_chain(GCP_REPORTED, models=("llama2", "mistral"))
    pool = chain["gcp-1-nodepool"]
    assert fp(pool)["nodeConfig"]["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
    sa = chain["gcp-1-cache-sa"]
    assert (sa.api_version, sa.kind) == ("cloudplatform.gcp.upbound.io/v1beta1", "ServiceAccount")
    assert (
        sa.body["metadata"]["annotations"][naming.EXTERNAL_NAME]
        != chain["gcp-1-node-sa"].body["metadata"]["annotations"][naming.EXTERNAL_NAME]
    )
    for model in ("llama2", "mistral"):
        binding = chain[f"gcp-1-model-identity-{model}"]
        assert (binding.api_version, binding.kind) == (
            "cloudplatform.gcp.upbound.io/v1beta2",
            "ServiceAccountIAMMember",
        )
        assert fp(binding)["role"] == "roles/iam.workloadIdentityUser"
        assert fp(binding)["member"] == (
            f"serviceAccount:my-project.svc.id.goog[ollama-{model}/ollama]"
        )
        # on the cache service account only, not the project
        assert (
            fp(binding)["serviceAccountIdSelector"]["matchLabels"] == sa.body["metadata"]["labels"]
        )
    access = chain["gcp-1-cache-bucket-access"]
    assert (access.api_version, access.kind) == (
        "storage.gcp.upbound.io/v1beta2",
        "BucketIAMMember",
    )
    assert fp(access)["role"] == "roles/storage.objectUser"
    assert fp(access)["member"] == f"serviceAccount:{CACHE_EMAIL}"
    assert (
        fp(access)["bucketSelector"]["matchLabels"]
        == chain["gcp-1-bucket"].body["metadata"]["labels"]
    )


def test_gke_no_project_wide_storage_role() -> None:
    chain = gcp_chain(GCP_REPORTED)
    for c in chain.values():
        if c.kind == "ProjectIAMMember":
            assert "storage" not in fp(c)["role"]
            assert "iam." not in fp(c)["role"]
        if "IAMMember" in c.kind:
            assert fp(c)["role"] not in {"roles/owner", "roles/editor", "roles/storage.admin"}


def test_gke_fleet_cache_names_the_reported_email_once_known() -> None:
    ctx = cluster_context("gcp")
    assert (
        modelcache.backend(ctx).fleet_cache(ctx, {}) is UNKNOWN
    )  # not known yet: an existing fleet keeps its
    block = modelcache.backend(ctx).fleet_cache(ctx, GCP_REPORTED)
    assert block == {
        "provider": "gcs",
        "bucket": external_name_of(gcp_chain()["gcp-1-bucket"]),
        "gcpServiceAccount": CACHE_EMAIL,
    }
    assert [
        (g.key, g.need) for g in modelcache.backend(ctx).gates(ctx, "llama2", GCP_REPORTED)
    ] == [
        ("gcp-1-gke-cluster", Need.READY),
        ("gcp-1-cache-sa", Need.READY),
        ("gcp-1-cache-sa", Need.REPORTED),  # its e-mail goes into the fleet
        ("gcp-1-cache-bucket-access", Need.READY),
        ("gcp-1-model-identity-llama2", Need.READY),
    ]


def external_name_of(c: Composed) -> str:
    return str(c.body["metadata"]["annotations"][naming.EXTERNAL_NAME])


# --------------------------------------------------------------------------- AKS chain


def azure_chain(
    observed: dict[str, dict[str, Any]] | None = None, models: tuple[str, ...] = ("llama2",)
) -> dict[str, Composed]:
    ctx = dataclasses.replace(cluster_context("azure"), models=models)
    return {c.key: c for c in composed(ctx, observed or {})}


CONTAINER_ID = (
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct"
    "/blobServices/default/containers/models"
)
ISSUER = "https://eastus.oic.prod-aks.azure.com/tenant/cluster-guid/"
AZURE_REPORTED = {
    **reports(
        "azure-1-cache-identity",
        "UserAssignedIdentity",
        clientId="00000000-0000-4000-8000-00000000c11d",
        principalId="00000000-0000-4000-8000-0000000000b1",
    ),
    **reports("azure-1-container", "Container", resourceManagerId=CONTAINER_ID),
    **reports("azure-1-aks-cluster", "KubernetesCluster", oidcIssuerUrl=ISSUER),
}


def test_aks_cluster_is_observed_never_managed() -> None:
    aks = azure_chain()["azure-1-aks-cluster"]
    assert (aks.api_version, aks.kind) == (
        "containerservice.azure.upbound.io/v1beta2",
        "KubernetesCluster",
    )
    assert aks.body["spec"]["managementPolicies"] == ["Observe"]
    ctx = cluster_context("azure")
    assert ctx.spec.azure is not None
    assert ctx.spec.azure.cluster_id.endswith("/" + external_name_of(aks))
    assert fp(aks) == {"resourceGroupName": ctx.spec.azure.cluster_id.split("/")[4]}


def test_aks_workload_identity_chain_from_service_account_to_container() -> None:
    chain = azure_chain(AZURE_REPORTED, models=("llama2", "mistral"))
    identity = chain["azure-1-cache-identity"]
    assert identity.kind == "UserAssignedIdentity"
    access = chain["azure-1-cache-access"]
    assert (access.api_version, access.kind) == (
        "authorization.azure.upbound.io/v1beta1",
        "RoleAssignment",
    )
    assert fp(access)["roleDefinitionName"] == "Storage Blob Data Contributor"
    assert fp(access)["scope"] == CONTAINER_ID  # the container, not the account or group
    assert fp(access)["principalId"] == "00000000-0000-4000-8000-0000000000b1"
    assert fp(access)["principalType"] == "ServicePrincipal"
    for model in ("llama2", "mistral"):
        cred = chain[f"azure-1-model-identity-{model}"]
        assert (cred.api_version, cred.kind) == (
            "managedidentity.azure.upbound.io/v1beta1",
            "FederatedIdentityCredential",
        )
        assert fp(cred)["issuer"] == ISSUER
        assert fp(cred)["subject"] == f"system:serviceaccount:ollama-{model}:ollama"
        assert fp(cred)["audience"] == ["api://AzureADTokenExchange"]
        assert (
            fp(cred)["userAssignedIdentityIdSelector"]["matchLabels"]
            == identity.body["metadata"]["labels"]
        )


def test_aks_chain_waits_for_what_the_provider_reports() -> None:
    chain = azure_chain({})
    access, cred = chain["azure-1-cache-access"], chain["azure-1-model-identity-llama2"]
    assert {(g.key, g.field) for g in access.gates} == {
        ("azure-1-cache-identity", "principalId"),
        ("azure-1-container", "resourceManagerId"),
    }
    assert [(g.key, g.field) for g in cred.gates] == [("azure-1-aks-cluster", "oidcIssuerUrl")]
    held = select(chain.values(), {})
    assert {"azure-1-cache-access", "azure-1-model-identity-llama2"} <= set(held.held)
    emitted = {c.key for c in select(azure_chain(AZURE_REPORTED).values(), AZURE_REPORTED).emitted}
    assert {"azure-1-cache-access", "azure-1-model-identity-llama2"} <= emitted


def test_aks_fleet_cache_names_the_reported_client_id() -> None:
    ctx = cluster_context("azure")
    assert modelcache.backend(ctx).fleet_cache(ctx, {}) is UNKNOWN
    assert modelcache.backend(ctx).fleet_cache(ctx, AZURE_REPORTED) == {
        "provider": "azureblob",
        "bucket": "models",
        "account": external_name_of(azure_chain()["azure-1-storage-account"]),
        "azureClientId": "00000000-0000-4000-8000-00000000c11d",
    }
    assert [
        (g.key, g.need) for g in modelcache.backend(ctx).gates(ctx, "llama2", AZURE_REPORTED)
    ] == [
        ("azure-1-cache-identity", Need.READY),
        ("azure-1-cache-identity", Need.REPORTED),  # its client id goes into the fleet
        ("azure-1-cache-access", Need.READY),
        ("azure-1-model-identity-llama2", Need.READY),
    ]


@pytest.mark.parametrize("cloud", ["gcp", "azure"])
def test_no_bucket_no_cache_chain(cloud: str) -> None:
    ctx = dataclasses.replace(cluster_context(cloud, bucket={"enabled": False}), models=("m",))
    observed = {**GCP_REPORTED, **AZURE_REPORTED}
    keys = {c.key for c in composed(ctx, observed)}
    assert not {k for k in keys if "cache" in k or "model-identity" in k or "aks-cluster" in k}
    assert modelcache.backend(ctx).fleet_cache(ctx, observed) is None
    assert modelcache.backend(ctx).gates(ctx, "m", observed) == ()


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


# --------------------------------------------------------------------------- prerequisites off

# A real report carries the cluster's id (and much more); only the pool is missing.
GKE_WITHOUT_POOL = reports(
    "gcp-1-gke-cluster", "Cluster", id="projects/my-project/locations/us-central1/clusters/gke-prod"
)
AKS_WITHOUT_WI = reports(
    "azure-1-aks-cluster",
    "KubernetesCluster",
    oidcIssuerEnabled=False,
    workloadIdentityEnabled=False,
)


def test_gke_cluster_is_observed_never_managed() -> None:
    gke = gcp_chain()["gcp-1-gke-cluster"]
    assert (gke.api_version, gke.kind) == ("container.gcp.upbound.io/v1beta2", "Cluster")
    assert gke.body["spec"]["managementPolicies"] == ["Observe"]
    assert external_name_of(gke) == "gke-prod"
    assert fp(gke) == {"project": "my-project", "location": "us-central1"}


def test_gke_pool_serves_the_metadata_server_only_once_the_cluster_has_a_workload_pool() -> None:
    def mode(observed: dict[str, dict[str, Any]]) -> Any:
        pool = gcp_chain(observed)["gcp-1-nodepool"]
        return fp(pool)["nodeConfig"].get("workloadMetadataConfig")

    assert mode(GCP_REPORTED) == {"mode": "GKE_METADATA"}
    # without a pool GKE would refuse GKE_METADATA: the node pool is built without it
    assert mode({**GCP_REPORTED, **GKE_WITHOUT_POOL}) is None
    # and it is not sent before the cluster is observed (it waits for it)
    held = select(gcp_chain({}).values(), {})
    assert "gcp-1-nodepool" in held.held


def test_gke_without_workload_identity_serves_models_without_the_cache() -> None:
    observed = {**GCP_REPORTED, **GKE_WITHOUT_POOL}
    ctx = dataclasses.replace(cluster_context("gcp"), models=("llama2",))
    keys = {c.key for c in composed(ctx, observed)}
    assert "gcp-1-model-identity-llama2" not in keys  # IAM would refuse the member
    assert {"gcp-1-bucket", "gcp-1-cache-sa", "gcp-1-nodepool"} <= keys
    assert modelcache.backend(ctx).fleet_cache(ctx, observed) is None
    assert modelcache.backend(ctx).gates(ctx, "llama2", observed) == ()  # the model is not held
    warning = modelcache.backend(ctx).warning(ctx, observed)
    assert warning is not None
    assert "gcloud container clusters update gke-prod" in warning
    assert "--workload-pool=my-project.svc.id.goog" in warning
    assert modelcache.backend(ctx).warning(ctx, GCP_REPORTED) is None
    # before the cluster is observed: the cache is unknown, the model waits for the cluster
    assert modelcache.backend(ctx).fleet_cache(ctx, {}) is UNKNOWN
    assert ("gcp-1-gke-cluster", Need.READY) in {
        (g.key, g.need) for g in modelcache.backend(ctx).gates(ctx, "llama2", {})
    }
    assert modelcache.backend(ctx).warning(ctx, {}) is None


@pytest.mark.parametrize(
    "flags",
    [
        {"oidcIssuerEnabled": False, "workloadIdentityEnabled": False},
        {"oidcIssuerEnabled": True, "workloadIdentityEnabled": False, "oidcIssuerUrl": ISSUER},
        {"id": "aks-prod"},  # observed (Ready) but no issuer URL reported
    ],
)
def test_aks_without_workload_identity_serves_models_without_the_cache(
    flags: dict[str, Any],
) -> None:
    observed = {**AZURE_REPORTED, **reports("azure-1-aks-cluster", "KubernetesCluster", **flags)}
    ctx = dataclasses.replace(cluster_context("azure"), models=("llama2",))
    keys = {c.key for c in composed(ctx, observed)}
    assert "azure-1-model-identity-llama2" not in keys
    assert modelcache.backend(ctx).fleet_cache(ctx, observed) is None
    assert modelcache.backend(ctx).gates(ctx, "llama2", observed) == ()
    warning = modelcache.backend(ctx).warning(ctx, observed)
    assert warning is not None
    assert "--enable-oidc-issuer --enable-workload-identity" in warning
    assert modelcache.backend(ctx).warning(ctx, AZURE_REPORTED) is None
    assert modelcache.backend(ctx).warning(ctx, {}) is None  # not observed yet: no verdict


def test_the_platform_warns_per_cluster_and_still_serves() -> None:
    from function.plan import XrMeta, plan_platform
    from tests.factories import platform_spec

    spec = platform_spec(("gcp", "azure"), models=[{"name": "llama2", "model": "llama2"}])
    observed = {
        **{k.replace("gcp-1", "gcp-1"): v for k, v in GKE_WITHOUT_POOL.items()},
        **AKS_WITHOUT_WI,
    }
    result = plan_platform(XrMeta(name="demo"), spec, FunctionInput(), observed)
    paths = [w.split(":", 1)[0] for w in result.warnings]
    assert paths == ["spec.clusters[0] (gcp-1)", "spec.clusters[1] (azure-1)"], result.warnings


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
