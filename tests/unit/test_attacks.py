"""Findings of an adversarial review: each is a Fatal naming the field, or correct output.

Every test says what it saw before the fix; each fails with its fix undone.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from crossplane.function.proto.v1 import run_function_pb2 as fnv1

from function import naming
from function.fleet import checks
from function.fn import to_struct
from function.models.input import DEFAULT_CHARTS
from function.validation import is_label_value
from scripts.render import desired, request, run
from scripts.stage import walk
from tests.factories import CLOUD_BLOCKS

API = "openhands.ai/v1alpha1"
EXPOSURE = {
    "host": "llama2.models.example.com",
    "tlsSecretName": "llama2-tls",
    "allowedSourceRanges": ["203.0.113.0/24"],
}


def platform_xr(spec: dict[str, Any], name: str = "attack-x1") -> dict[str, Any]:
    return {"apiVersion": API, "kind": "XOllamaPlatform", "metadata": {"name": name}, "spec": spec}


def fleet_xr(**spec: Any) -> dict[str, Any]:
    body = {"model": "llama2", "target": {"providerConfigName": "pc"}, **spec}
    return {"apiVersion": API, "kind": "XOllamaFleet", "metadata": {"name": "llama2"}, "spec": body}


def existing(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "cloud": "existing",
        "kubeconfig": {"providerConfigName": f"{name}-pc"},
        **extra,
    }


def cloud_cluster(name: str, kind: str, **extra: Any) -> dict[str, Any]:
    """A cloud cluster reached through its own kubeconfig Secret."""
    return {
        "name": name,
        "cloud": kind,
        "kubeconfig": {
            "secretRef": {"name": f"{name}-kubeconfig", "namespace": "crossplane-system"}
        },
        **copy.deepcopy(CLOUD_BLOCKS[kind]),
        **extra,
    }


def platform_spec(clusters: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "profile": "development",
        "clusters": clusters,
        "models": [{"name": "llama2", "model": "llama2"}],
        **extra,
    }


def fatals(rsp: fnv1.RunFunctionResponse) -> list[str]:
    return [r.message for r in rsp.results if r.severity == fnv1.SEVERITY_FATAL]


def refusal(xr: dict[str, Any], inputs: dict[str, Any] | None = None) -> str:
    """The one Fatal the function answers ``xr`` with ('' when it composes)."""
    req = request(xr)
    if inputs is not None:
        req.input.CopyFrom(to_struct(inputs))
    rsp = run(req)
    found = fatals(rsp)
    assert len(found) <= 1, found
    if found:
        assert not rsp.desired.resources, "a refused XR composes nothing"
    return found[0] if found else ""


def refused_at(xr: dict[str, Any], path: str, *words: str) -> str:
    message = refusal(xr)
    assert f": {path}: " in message or f"; {path}: " in message, message
    for word in words:
        assert word in message, message
    return message


# ------------------------------------------------------- 1. label values of long names


def _label_values(node: Any, where: str = "") -> list[tuple[str, str]]:
    """Every (path, value) under ``labels`` or ``matchLabels`` in ``node``."""
    out: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("labels", "matchLabels") and isinstance(value, dict):
                out += [(f"{where}.{key}[{k}]", v) for k, v in value.items()]
            out += _label_values(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _label_values(value, f"{where}[{i}]")
    return out


def _converged(xr: dict[str, Any]) -> dict[str, dict[str, Any]]:
    stages = walk(xr)
    rsp = run(request(xr, stages[-1]))
    assert not fatals(rsp), fatals(rsp)
    return desired(rsp)


def test_every_label_value_is_valid_at_the_longest_names_the_xrd_admits() -> None:
    # Before: a 40-character model on a cluster with objectStorage minio got the role
    # label object-minio-cache-binding-<model> (67 characters), which Kubernetes refuses,
    # on the PolicyBinding Object and in the ClusterUsage selectors that name it.
    cluster, model = "c" * 20, "m" * 40  # the XRD's maxLength of each name
    spec = {
        "profile": "development",
        "clusters": [
            existing(cluster, stackDeletionPolicy="Delete"),
            cloud_cluster("a" * 20, "aws"),
        ],
        "models": [
            {"name": model, "model": "llama2"},
            {"name": "n" * 40, "model": "mistral"},
        ],
        "components": {"objectStorage": "minio", "blockStorage": "longhorn"},
    }
    resources = _converged(platform_xr(spec, name="p" * 63))
    values = [
        (f"{key}{path}", v) for key, body in resources.items() for path, v in _label_values(body)
    ]
    for key, body in resources.items():
        if body["kind"] == "XOllamaFleet":  # what Crossplane composes next
            fleet = {**body, "metadata": {"name": "f" * 63}}
            values += [
                (f"{key}/{k}{p}", v)
                for k, b in _converged(fleet).items()
                for p, v in _label_values(b)
            ]
    bad = [(where, value) for where, value in values if not is_label_value(value)]
    assert not bad, bad
    # The shortened role is the one the selectors use: each matches what it names.
    roles = [v for w, v in values if w.endswith(f"labels[{naming.LABEL_ROLE}]")]
    binding = [r for r in roles if r.startswith("object-minio-cache-binding-")]
    assert len(binding) == 2 * 2, binding  # two models on each of two clusters
    assert len(set(binding)) == 2, binding  # the cluster label tells the clusters apart
    for key, body in resources.items():
        if body["kind"] != "ClusterUsage":
            continue
        for side in ("of", "by"):
            wanted = body["spec"][side].get("resourceSelector", {}).get("matchLabels", {})
            if naming.LABEL_FLEET in wanted:
                continue  # a nested fleet's Namespace Object: composed by the fleet
            assert any(
                wanted.items() <= (other.get("metadata", {}).get("labels") or {}).items()
                for other in resources.values()
            ), (key, side, wanted)


def test_role_labels_that_fit_are_kept_and_longer_ones_shortened_stably() -> None:
    # Before: naming.label_value did not exist; roles were used as they came.
    fits = "object-minio-cache-binding-" + "m" * 36  # 63 characters
    assert naming.label_value(fits) == fits
    long_a = "object-minio-cache-binding-" + "m" * 40
    long_b = "object-minio-cache-binding-" + "m" * 39 + "n"
    short_a = naming.label_value(long_a)
    assert is_label_value(short_a)
    assert len(short_a) == 63
    assert short_a == naming.label_value(long_a)  # every reconcile agrees
    assert short_a != naming.label_value(long_b)  # a difference past the cut still tells


# ------------------------------------------------------- 2. one cluster listed twice

SAME_CLUSTER = {
    "kubeconfig ProviderConfig": (
        existing("a"),
        {**existing("b"), "kubeconfig": {"providerConfigName": "a-pc"}},
        "ProviderConfig a-pc",
    ),
    "kubeconfig Secret key": (
        cloud_cluster("a", "aws"),
        {
            **cloud_cluster("b", "gcp"),
            "kubeconfig": {
                "secretRef": {
                    "name": "a-kubeconfig",
                    "namespace": "crossplane-system",
                    "key": "kubeconfig",
                }
            },
        },
        "kubeconfig Secret crossplane-system/a-kubeconfig key kubeconfig",
    ),
    "EKS cluster": (
        cloud_cluster("a", "aws"),
        cloud_cluster("b", "aws"),
        "EKS cluster us-east-1/eks-prod",
    ),
    "GKE cluster": (
        cloud_cluster("a", "gcp"),
        cloud_cluster("b", "gcp"),
        "GKE cluster my-project/us-central1/gke-prod",
    ),
    "AKS cluster, id in another case": (
        cloud_cluster("a", "azure"),
        {
            **cloud_cluster("b", "azure"),
            "azure": {
                **CLOUD_BLOCKS["azure"]["azure"],
                "clusterId": CLOUD_BLOCKS["azure"]["azure"]["clusterId"].replace(
                    "aks-prod", "AKS-Prod"
                ),
            },
        },
        "AKS cluster /subscriptions/",
    ),
}


@pytest.mark.parametrize("case", sorted(SAME_CLUSTER))
def test_a_cluster_listed_twice_is_refused_naming_the_earlier_entry(case: str) -> None:
    # Before: the claim composed, and the stack and every model went into the cluster twice.
    first, second, identity = SAME_CLUSTER[case]
    message = refused_at(
        platform_xr(platform_spec([existing("other"), first, second])),
        "spec.clusters[2]",
        "cluster 'b' is the same cluster as spec.clusters[1] ('a')",
        identity,
        "list each cluster once",
    )
    assert "spec.clusters[1]:" not in message  # the first entry is not the one at fault


def test_two_clusters_of_one_cloud_that_differ_compose() -> None:
    other = cloud_cluster(
        "b", "aws", aws={**CLOUD_BLOCKS["aws"]["aws"], "clusterName": "eks-other"}
    )
    assert refusal(platform_xr(platform_spec([cloud_cluster("a", "aws"), other]))) == ""


# ------------------------------------------------------- 3. exposure: callers, Secret, host

NOT_A_RANGE = ("999.999.999.999/99", "10.0.0.0/33", "2001:db8::/129", "10.0.0.0/08", ":::/0")


@pytest.mark.parametrize("cidr", NOT_A_RANGE)
def test_an_allowed_source_range_that_is_no_range_is_refused(cidr: str) -> None:
    # Before: each composed, and went into Contour's allow list and the load balancer.
    spec = platform_spec(
        [existing("a")],
        models=[
            {
                "name": "llama2",
                "model": "llama2",
                "exposure": {**EXPOSURE, "allowedSourceRanges": [cidr]},
            }
        ],
    )
    refused_at(platform_xr(spec), "spec.models[0].exposure.allowedSourceRanges[0]", repr(cidr))


@pytest.mark.parametrize(
    ("cidr", "network"),
    [
        ("10.0.0.1/8", "10.0.0.0/8"),
        ("2001:db8::1/32", "2001:db8::/32"),
        ("203.0.113.7/24", "203.0.113.0/24"),
    ],
)
def test_a_range_with_host_bits_is_refused_with_its_network(cidr: str, network: str) -> None:
    # Before: composed; Contour and the load balancer silently took the whole network.
    xr = fleet_xr(
        ingress="contour", exposure={**EXPOSURE, "allowedSourceRanges": ["192.0.2.0/24", cidr]}
    )
    refused_at(
        xr, "spec.exposure.allowedSourceRanges[1]", f"has host bits set; use its network {network}"
    )


@pytest.mark.parametrize(
    "ranges",
    [["10.0.0.0/8", "10.0.0.0/8"], ["2001:db8::/32", "2001:DB8:0::/32"]],
    ids=["same", "same-network"],
)
def test_a_range_listed_twice_is_refused(ranges: list[str]) -> None:
    # Before: both copies went into the allow list and the load balancer's ranges.
    xr = fleet_xr(ingress="contour", exposure={**EXPOSURE, "allowedSourceRanges": ranges})
    refused_at(
        xr,
        "spec.exposure.allowedSourceRanges[1]",
        "is the same range as [0]",
        "list each range once",
    )


def test_ipv4_mapped_and_zoned_addresses_are_no_ranges() -> None:
    # Before: cidr_problem did not exist; ::ffff:10.0.0.1 composed as given.
    assert (
        checks.cidr_problem("::ffff:10.0.0.1")
        == "is an IPv4-mapped IPv6 address; write the IPv4 form"
    )
    assert checks.cidr_problem("fe80::1%eth0") is not None
    assert checks.cidr_problem("10.0.0.0/255.0.0.0") is not None
    for good in ("10.0.0.0/8", "198.51.100.7", "2001:db8::/32", "::/0", "0.0.0.0/0", "2001:db8::1"):
        assert checks.cidr_problem(good) is None, good


@pytest.mark.parametrize("secret", ["a" * 254, "certs/" + "a" * 254], ids=["name", "delegated"])
def test_a_tls_secret_name_over_253_characters_is_refused(secret: str) -> None:
    # Before: composed; the HTTPProxy named a Secret that cannot exist.
    xr = fleet_xr(ingress="contour", exposure={**EXPOSURE, "tlsSecretName": secret})
    refused_at(xr, "spec.exposure.tlsSecretName", "254 characters", "at most 253")


def test_a_tls_secret_namespace_over_63_characters_is_refused() -> None:
    # Before: composed (the namespace part was a subdomain of up to 253 characters).
    xr = fleet_xr(ingress="contour", exposure={**EXPOSURE, "tlsSecretName": "n" * 64 + "/tls"})
    refused_at(xr, "spec.exposure.tlsSecretName", "namespace of at most 63 characters")


def test_a_host_with_a_label_over_63_characters_is_refused() -> None:
    # Before: composed; the HTTPProxy's fqdn was no DNS name.
    xr = fleet_xr(ingress="contour", exposure={**EXPOSURE, "host": "a" * 64 + ".example.com"})
    refused_at(xr, "spec.exposure.host", "at most 63 characters")


def test_exposure_at_its_limits_composes() -> None:
    exposure = {
        "host": "a" * 63 + ".example.com",
        "tlsSecretName": "n" * 63 + "/" + "s" * 253,
        "allowedSourceRanges": ["198.51.100.7", "2001:db8::1", "203.0.113.0/24", "2001:db8::/32"],
    }
    assert refusal(fleet_xr(ingress="contour", exposure=exposure)) == ""


# ------------------------------------------------------- 4. garbage in fleet specs


@pytest.mark.parametrize("field", ["name", "metricType"])
@pytest.mark.parametrize("garbage", [{"a": 1}, ["Value"]], ids=["map", "list"])
def test_a_trigger_name_or_metric_type_of_the_wrong_type_is_a_fatal(
    field: str, garbage: Any
) -> None:
    # Before: "internal error: TypeError" (an unhashable value tested against a set).
    trigger = {"type": "cron", "metadata": {"timezone": "UTC"}, field: garbage}
    message = refused_at(
        fleet_xr(scaling={"metrics": [trigger]}), f"spec.scaling.metrics[0].{field}"
    )
    assert "internal error" not in message


@pytest.mark.parametrize(
    ("trigger", "path"),
    [
        ({"type": "cron\x1b[2J", "metadata": {}}, "spec.scaling.metrics[0].type"),
        ({"type": "cron job", "metadata": {}}, "spec.scaling.metrics[0].type"),
        ({"type": "cron", "metadata": {"time\nzone": "UTC"}}, "spec.scaling.metrics[0].metadata"),
        (
            {"type": "cron", "metadata": {"timezone": "UTC\r\nX-Injected: 1"}},
            "spec.scaling.metrics[0].metadata.timezone",
        ),
        (
            {"type": "cron", "metadata": {"timezone": "UTC\x00"}},
            "spec.scaling.metrics[0].metadata.timezone",
        ),
    ],
    ids=["type-escape", "type-space", "key-newline", "value-newline", "value-nul"],
)
def test_control_characters_never_reach_the_scaled_object(
    trigger: dict[str, Any], path: str
) -> None:
    # Before: each composed, the characters copied into the ScaledObject's trigger.
    message = refused_at(fleet_xr(scaling={"metrics": [trigger]}), path)
    for raw in ("\x1b", "\n", "\r", "\x00"):
        assert raw not in message  # echoed escaped, never raw


def test_trigger_settings_that_are_printable_compose() -> None:
    query = 'sum(rate(http_requests_total{service="ollama"}[2m])) > 0'
    trigger = {
        "type": "prometheus",
        "metadata": {"query": query, "threshold": "5", "unsafeSsl": True},
    }
    assert refusal(fleet_xr(scaling={"metrics": [trigger]})) == ""


@pytest.mark.parametrize("size", ["0", "0Gi", "0.0", ".0", "000Mi"])
def test_a_storage_size_of_zero_is_refused(size: str) -> None:
    # Before: composed a PersistentVolumeClaim (or emptyDir limit) of nothing.
    refused_at(fleet_xr(storage={"size": size}), "spec.storage.size", "greater than zero")
    spec = platform_spec(
        [existing("a")], models=[{"name": "m", "model": "llama2", "storage": {"size": size}}]
    )
    refused_at(platform_xr(spec), "spec.models[0].storage.size", "greater than zero")


@pytest.mark.parametrize(
    ("cache", "missing"),
    [
        ({"provider": "s3", "bucket": "models"}, ["region"]),
        ({"provider": "gcs", "bucket": "models"}, ["gcpServiceAccount"]),
        ({"provider": "azureblob", "bucket": "models"}, ["account", "azureClientId"]),
        ({"provider": "azureblob", "bucket": "models", "account": "acct"}, ["azureClientId"]),
    ],
    ids=["s3", "gcs", "azureblob", "azureblob-no-client"],
)
def test_a_cache_without_what_its_provider_reads_is_refused(
    cache: dict[str, str], missing: list[str]
) -> None:
    # Before: composed pods whose rclone remote lacked its region, account or identity.
    message = refusal(fleet_xr(cache=cache))
    for field in missing:
        assert f"spec.cache.{field}: required when provider is {cache['provider']}" in message, (
            message
        )


@pytest.mark.parametrize(
    ("cache", "words"),
    [
        ({"provider": "s3", "bucket": "a..b", "region": "us-east-1"}, "must be a bucket name"),
        ({"provider": "minio", "bucket": "ab"}, "at least 3"),
        (
            {"provider": "gcs", "bucket": "-models", "gcpServiceAccount": "sa@p.iam"},
            "must be a bucket name",
        ),
        (
            {"provider": "s3", "bucket": "192.168.5.4", "region": "us-east-1"},
            "formatted as an IP address",
        ),
        (
            {
                "provider": "azureblob",
                "bucket": "my.models",
                "account": "acct",
                "azureClientId": "id",
            },
            "is not an Azure blob container name",
        ),
        (
            {
                "provider": "azureblob",
                "bucket": "my--models",
                "account": "acct",
                "azureClientId": "id",
            },
            "is not an Azure blob container name",
        ),
    ],
    ids=[
        "double-dot",
        "too-short",
        "leading-hyphen",
        "ip-address",
        "azure-dot",
        "azure-double-hyphen",
    ],
)
def test_a_bucket_name_its_store_refuses_is_refused(cache: dict[str, str], words: str) -> None:
    # Before: a..b, ab, 192.168.5.4, my.models and my--models composed; -models was
    # refused with the bare pattern as its message.
    refused_at(fleet_xr(cache=cache), "spec.cache.bucket", words)


def test_caches_with_their_settings_compose() -> None:
    for cache in (
        {"provider": "s3", "bucket": "my.models-1", "region": "us-east-1"},
        {
            "provider": "gcs",
            "bucket": "models",
            "gcpServiceAccount": "sa@p.iam.gserviceaccount.com",
        },
        {"provider": "azureblob", "bucket": "models-1", "account": "acct", "azureClientId": "id"},
        {"provider": "minio", "bucket": "ollama-models"},
    ):
        assert refusal(fleet_xr(cache=cache)) == "", cache


# ------------------------------------------------------- 5. chart overrides for no component


def test_a_chart_override_for_an_unknown_component_is_refused() -> None:
    # Before: the override was accepted and silently never used.
    chart = {"repository": "https://helm.cilium.io/", "chart": "cilium", "version": "1.18.4"}
    inputs = {
        "apiVersion": "ollama.fn.openhands.ai/v1beta1",
        "kind": "Input",
        "spec": {"charts": {"cilum": chart}},
    }
    message = refusal(platform_xr(platform_spec([existing("a")])), inputs)
    assert "input.spec.charts.cilum: no component is named 'cilum'" in message, message
    assert ", ".join(sorted(DEFAULT_CHARTS)) in message
    inputs["spec"]["charts"] = {"cil\x1bium": chart}  # echoed escaped, and not in the path
    message = refusal(platform_xr(platform_spec([existing("a")])), inputs)
    assert "input.spec.charts: no component is named 'cil\\x1bium'" in message, message
    assert "\x1b" not in message
    inputs["spec"]["charts"] = {"cilium": chart}
    assert refusal(platform_xr(platform_spec([existing("a")])), inputs) == ""
