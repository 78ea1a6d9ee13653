"""Cluster access (function/access.py): the ProviderConfigs, static or by cloud identity.

A cluster reached by a kubeconfig Secret gets a provider-helm and a
provider-kubernetes ProviderConfig. With ``kubeconfig.identity`` they carry
``spec.identity`` of the cluster's cloud (the kubeconfig then holds the
endpoint and CA); without it they are exactly what they always were. Every
ProviderConfig is checked against the real provider CRDs (OLLAMA_PLATFORM_CRDS,
default ../shared/crds); every wrong combination is a Fatal naming the field.
"""

from __future__ import annotations

import asyncio
import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function import access, wrap
from function.fn import FunctionRunner, to_struct
from function.models.common import Cloud
from function.models.input import FunctionInput
from function.models.platform import CLOUD_IDENTITY, IdentityType, PlatformSpec
from function.validation import check_platform
from scripts.render import desired, load_docs, observed_map, request, run
from tests import crdschema, toolchain
from tests.factories import CLOUD_BLOCKS, cluster_context

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "crossplane-system"
KUBECONFIG = {"name": "c-endpoint", "namespace": NAMESPACE, "key": "kubeconfig"}
AZURE_SETTINGS = {"name": "c-identity", "namespace": NAMESPACE, "key": "credentials"}
APIS = {
    "helm": "helm.crossplane.io/v1beta1",
    "kubernetes": "kubernetes.crossplane.io/v1alpha1",
}
# What each cloud's cluster entry says, and what both ProviderConfigs must then carry.
IDENTITY = {
    "aws": (
        {"type": "AWSWebIdentityCredentials"},
        {"type": "AWSWebIdentityCredentials", "source": "InjectedIdentity"},
    ),
    "gcp": (
        {"type": "GoogleApplicationCredentials"},
        {"type": "GoogleApplicationCredentials", "source": "InjectedIdentity"},
    ),
    "azure": (
        {"type": "AzureWorkloadIdentityCredentials", "secretRef": AZURE_SETTINGS},
        {
            "type": "AzureWorkloadIdentityCredentials",
            "source": "Secret",
            "secretRef": AZURE_SETTINGS,
        },
    ),
}
EXAMPLES = {"aws": "aws-identity", "gcp": "gcp-identity", "azure": "azure-identity"}


@pytest.fixture(scope="module")
def crds() -> Path:
    return toolchain.crds_dir()


def identity_context(cloud: str, identity: dict[str, Any] | None = None):
    kubeconfig: dict[str, Any] = {"secretRef": dict(KUBECONFIG)}
    if identity is not None:
        kubeconfig["identity"] = copy.deepcopy(identity)
    return cluster_context(cloud, kubeconfig=kubeconfig)


def crd_identity_schema(api_version: str) -> dict[str, Any]:
    found = crdschema.default_index().openapi(api_version, "ProviderConfig")
    assert found is not None, f"no ProviderConfig CRD for {api_version}"
    return found[0]["properties"]["spec"]["properties"]["identity"]


# --- each identity type against the real CRDs ----------------------------------------


@pytest.mark.parametrize("cloud", sorted(IDENTITY))
def test_each_identity_type_composes_provider_configs_the_real_crds_accept(
    cloud: str, crds: Path
) -> None:
    claim, expected = IDENTITY[cloud]
    ctx = identity_context(cloud, claim)
    pcs = access.provider_configs(ctx)
    assert [c.key for c in pcs] == [
        wrap.provider_config_key(ctx.name, "helm"),
        wrap.provider_config_key(ctx.name, "kubernetes"),
    ]
    for composed, (provider, api) in zip(pcs, APIS.items(), strict=True):
        body = composed.body
        assert body["apiVersion"] == api
        assert body["kind"] == "ProviderConfig"
        assert body["metadata"]["labels"] == ctx.labels(f"providerconfig-{provider}")
        # the kubeconfig Secret (endpoint and CA), and the identity of the cluster's cloud
        assert body["spec"] == {
            "credentials": {"source": "Secret", "secretRef": KUBECONFIG},
            "identity": expected,
        }
        assert crdschema.validate(body) == [], (provider, body)


def test_the_crds_offer_every_identity_type_and_source_the_function_uses(crds: Path) -> None:
    for api in APIS.values():
        schema = crd_identity_schema(api)
        assert set(schema["required"]) == {"source", "type"}, api
        types = schema["properties"]["type"]["enum"]
        sources = schema["properties"]["source"]["enum"]
        for member in IdentityType:
            assert member.value in types, (api, member)
        assert set(access.IDENTITY_SOURCES.values()) <= set(sources), api
        # a Secret source names its key: the schema requires name, namespace and key
        assert set(schema["properties"]["secretRef"]["required"]) == {"key", "name", "namespace"}


@pytest.mark.parametrize(
    ("identity", "complaint"),
    [
        ({"type": "AWSWebIdentityCredentials"}, "'source' is a required property"),
        ({"source": "InjectedIdentity"}, "'type' is a required property"),
        ({"type": "AWSCredentials", "source": "InjectedIdentity"}, "is not one of"),
        ({"type": "GoogleApplicationCredentials", "source": "Workload"}, "is not one of"),
    ],
)
def test_the_crd_check_refuses_what_the_function_never_composes(
    identity: dict[str, Any], complaint: str, crds: Path
) -> None:
    """The validator the tests above rely on does refuse a malformed identity."""
    [composed, _] = access.provider_configs(identity_context("aws", IDENTITY["aws"][0]))
    body = copy.deepcopy(composed.body)
    body["spec"]["identity"] = identity
    errors = crdschema.validate(body)
    assert any(e.startswith("spec.identity") and complaint in e for e in errors), errors


# --- the static path ------------------------------------------------------------------


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure", "existing"])
def test_without_identity_the_provider_configs_are_unchanged(cloud: str, crds: Path) -> None:
    ctx = identity_context(cloud)
    pcs = access.provider_configs(ctx)
    expected = [
        {
            "apiVersion": api,
            "kind": "ProviderConfig",
            "metadata": {"labels": ctx.labels(f"providerconfig-{provider}")},
            "spec": {"credentials": {"source": "Secret", "secretRef": KUBECONFIG}},
        }
        for provider, api in APIS.items()
    ]
    assert [c.body for c in pcs] == expected
    assert all(not c.gates and not c.latch for c in pcs)
    for body in expected:
        assert crdschema.validate(body) == []


def test_existing_provider_configs_compose_nothing() -> None:
    ctx = cluster_context("aws", kubeconfig={"providerConfigName": "eks-prod"})
    assert access.provider_configs(ctx) == []


def test_the_static_examples_compose_the_same_provider_configs_as_their_goldens() -> None:
    """The golden files hold what the static path composed before access.py existed."""
    for case in ("aws", "gcp", "azure", "multicloud", "existing", "production"):
        folder = ROOT / "examples" / case
        xr = load_docs(folder / "xr.yaml")[0]
        final = observed_map(load_docs(sorted(folder.glob("observed-*.yaml"))[-1]))
        now = {
            k: v for k, v in desired(run(request(xr, final))).items() if v["kind"] == "ProviderConfig"
        }
        golden = {
            d["composition-resource-name"]: {k: v for k, v in d.items() if k != "composition-resource-name"}
            for d in yaml.safe_load_all((ROOT / "tests" / "golden" / f"{case}.yaml").read_text())
            if d and d.get("kind") == "ProviderConfig"
        }
        assert now == golden, case
        assert all("identity" not in body["spec"] for body in now.values()), case


# --- the identity examples ------------------------------------------------------------


@pytest.mark.parametrize("cloud", sorted(EXAMPLES))
def test_identity_examples_reach_their_cluster_as_its_cloud_identity(cloud: str, crds: Path) -> None:
    folder = ROOT / "examples" / EXAMPLES[cloud]
    xr = load_docs(folder / "xr.yaml")[0]
    assert load_docs(folder / "claim.yaml")[0]["spec"] == xr["spec"]
    final = observed_map(load_docs(sorted(folder.glob("observed-*.yaml"))[-1]))
    rsp = run(request(xr, final))
    assert not [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]
    out = desired(rsp)
    pcs = {k: v for k, v in out.items() if v["kind"] == "ProviderConfig"}
    assert len(pcs) == 2
    cluster = xr["spec"]["clusters"][0]
    wanted = CLOUD_IDENTITY[Cloud(cloud)].value
    for key, body in pcs.items():
        assert body["spec"]["identity"]["type"] == wanted, key
        assert body["spec"]["credentials"]["secretRef"] == cluster["kubeconfig"]["secretRef"]
        assert crdschema.validate(body) == [], key
    # every Release and Object goes through the composed ProviderConfigs, by their observed names
    names = {final[k]["metadata"]["name"] for k in pcs}
    refs = {
        body["spec"]["providerConfigRef"]["name"]
        for body in out.values()
        if body["kind"] in ("Release", "Object")
    }
    assert refs == names


def test_an_identity_cluster_gates_in_cluster_work_on_its_provider_configs() -> None:
    ctx = identity_context("gcp", IDENTITY["gcp"][0])
    target = wrap.target_of(ctx)
    assert [g.key for g in target.helm_gates] == [wrap.provider_config_key(ctx.name, "helm")]
    assert [g.key for g in target.kubernetes_gates] == [
        wrap.provider_config_key(ctx.name, "kubernetes")
    ]


# --- wrong combinations: one Fatal naming the field and the fix ----------------------


def fatals(cluster: dict[str, Any]) -> list[str]:
    xr = {
        "apiVersion": "openhands.ai/v1alpha1",
        "kind": "XOllamaPlatform",
        "metadata": {"name": "access-x1y2z"},
        "spec": {
            "profile": "development",
            "clusters": [cluster],
            "models": [{"name": "llama2", "model": "llama2"}],
        },
    }
    req = fnv1.RunFunctionRequest()
    req.observed.composite.resource.CopyFrom(to_struct(xr))
    rsp = asyncio.run(FunctionRunner(cache_size=0).RunFunction(req, None))
    return [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]


def entry(cloud: str, kubeconfig: dict[str, Any]) -> dict[str, Any]:
    return {"name": "c1", "cloud": cloud, "kubeconfig": kubeconfig, **copy.deepcopy(CLOUD_BLOCKS[cloud])}


def secret(identity: dict[str, Any]) -> dict[str, Any]:
    return {"secretRef": dict(KUBECONFIG), "identity": identity}


P = "spec.clusters[0].kubeconfig.identity"
WRONG = {
    "google on aws": (
        entry("aws", secret({"type": "GoogleApplicationCredentials"})),
        [(f"{P}.type: GoogleApplicationCredentials cannot reach a cluster whose cloud is aws; "
         "use AWSWebIdentityCredentials (the provider pods' IRSA or EKS Pod Identity role)")],
    ),
    "aws on gcp": (
        entry("gcp", secret({"type": "AWSWebIdentityCredentials"})),
        [(f"{P}.type: AWSWebIdentityCredentials cannot reach a cluster whose cloud is gcp; "
         "use GoogleApplicationCredentials (the provider pods' GKE Workload Identity)")],
    ),
    "azure on gcp": (
        entry("gcp", secret({"type": "AzureWorkloadIdentityCredentials", "secretRef": AZURE_SETTINGS})),
        [(f"{P}.type: AzureWorkloadIdentityCredentials cannot reach a cluster whose cloud is gcp; "
         "use GoogleApplicationCredentials")],
    ),
    "aws on azure": (
        entry("azure", secret({"type": "AWSWebIdentityCredentials"})),
        [(f"{P}.type: AWSWebIdentityCredentials cannot reach a cluster whose cloud is azure; "
         "use AzureWorkloadIdentityCredentials (a Microsoft Entra workload identity")],
    ),
    "any on existing": (
        entry("existing", secret({"type": "GoogleApplicationCredentials"})),
        [(f"{P}.type: GoogleApplicationCredentials cannot reach a cluster whose cloud is existing: "
         "existing clusters are reached by their kubeconfig alone; remove kubeconfig.identity")],
    ),
    "identity with providerConfigName": (
        entry("aws", {"providerConfigName": "eks-prod", "identity": {"type": "AWSWebIdentityCredentials"}}),
        [f"{P}: needs kubeconfig.secretRef", ("remove kubeconfig.identity, or name the kubeconfig "
         "Secret in secretRef instead of providerConfigName")],
    ),
    "azure without its settings": (
        entry("azure", secret({"type": "AzureWorkloadIdentityCredentials"})),
        [f"{P}.secretRef: required for AzureWorkloadIdentityCredentials",
         "JSON with clientId, tenantId, federatedTokenFile, authorityHost and serverId"],
    ),
    "a Secret for the aws identity": (
        entry("aws", secret({"type": "AWSWebIdentityCredentials", "secretRef": AZURE_SETTINGS})),
        [(f"{P}.secretRef: only for AzureWorkloadIdentityCredentials: AWSWebIdentityCredentials "
         "takes its credentials from the provider pods' IRSA or EKS Pod Identity role, never from "
         "a Secret; remove identity.secretRef")],
    ),
    "an unknown type": (
        entry("aws", secret({"type": "AWSCredentials"})),
        [f"{P}.type: 'AWSCredentials' is not one of"],
    ),
    "no type": (
        entry("gcp", secret({})),
        [f"{P}.type: required field is missing"],
    ),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_a_wrong_combination_is_one_fatal_naming_the_field_and_the_fix(case: str) -> None:
    cluster, expected = WRONG[case]
    [message] = fatals(cluster)
    assert message.startswith("cannot compose XOllamaPlatform access-x1y2z: "), message
    for words in expected:
        assert words in message, message


def test_a_wrong_type_and_a_missing_secret_are_both_reported() -> None:
    [message] = fatals(entry("gcp", secret({"type": "AzureWorkloadIdentityCredentials"})))
    assert f"{P}.secretRef: required for AzureWorkloadIdentityCredentials" in message
    assert f"{P}.type: AzureWorkloadIdentityCredentials cannot reach" in message


def test_every_cloud_and_type_pair_is_judged_as_the_xrd_rule_judges_it() -> None:
    """The function and the XRD's CEL rule accept the same pairs: each cloud's own type."""
    xrd = yaml.safe_load((ROOT / "xrds" / "xollamaplatforms.openhands.ai.yaml").read_text())
    cluster = xrd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["clusters"]["items"]
    [rule] = [
        r["rule"]
        for r in cluster["x-kubernetes-validations"]
        if r.get("fieldPath") == ".kubeconfig.identity.type"
    ]
    allowed_by_rule = set(
        re.findall(r"self\.cloud == '(\w+)' && self\.kubeconfig\.identity\.type == '(\w+)'", rule)
    )
    for cloud in Cloud:
        for member in IdentityType:
            identity: dict[str, Any] = {"type": member.value}
            if member is IdentityType.AZURE_WORKLOAD_IDENTITY:
                identity["secretRef"] = AZURE_SETTINGS
            spec = PlatformSpec.model_validate(
                {"profile": "development", "clusters": [entry(cloud.value, secret(identity))]}
            )
            errors = check_platform(spec, FunctionInput())
            refused = any(e.path == f"{P}.type" for e in errors)
            assert refused == ((cloud.value, member.value) not in allowed_by_rule), (cloud, member)
            assert refused == (CLOUD_IDENTITY.get(cloud) is not member), (cloud, member)


# --- the README's setup snippets validate ---------------------------------------------


def _readme_docs() -> list[dict[str, Any]]:
    text = (ROOT / "README.md").read_text()
    docs = []
    for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL):
        for doc in yaml.safe_load_all(block):
            if isinstance(doc, dict) and doc.get("kind") in (
                "DeploymentRuntimeConfig",
                "Provider",
                "OllamaPlatform",
            ):
                docs.append(doc)
    return docs


def test_the_readme_identity_setup_validates_against_the_real_crds(crds: Path) -> None:
    docs = _readme_docs()
    kinds = {d["kind"] for d in docs}
    assert {"DeploymentRuntimeConfig", "Provider"} <= kinds, kinds
    identities = {
        c["kubeconfig"]["identity"]["type"]
        for d in docs
        if d["kind"] == "OllamaPlatform"
        for c in d["spec"]["clusters"]
        if "identity" in c.get("kubeconfig", {})
    }
    assert identities == {m.value for m in IdentityType}
    for doc in docs:
        assert crdschema.validate(doc) == [], doc
