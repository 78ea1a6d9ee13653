"""Clean removal: what is deleted with a model or a claim, and in which order."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from function import fleet, naming, stack, usages
from function.models.fleet import FleetSpec
from function.models.input import FunctionInput
from function.usages import COMPOSITE_LABEL
from function.wrap import DELETABLE_MANAGEMENT_POLICIES, IN_CLUSTER_MANAGEMENT_POLICIES
from scripts.render import desired, load_docs, request, run
from scripts.stage import walk
from tests.factories import GATEWAY_ROUTING, cluster_context

ROOT = Path(__file__).resolve().parents[2]
CLOUDS = ("aws", "gcp", "azure", "existing")


def xr_of(case: str) -> dict[str, Any]:
    return load_docs(ROOT / "examples" / case / "xr.yaml")[0]


def fleet_spec(cloud: str, **extra: Any) -> FleetSpec:
    return FleetSpec.model_validate(
        {"model": "llama2", "target": {"providerConfigName": "pc-k8s", "cloud": cloud}, **extra}
    )


@pytest.fixture(scope="module")
def uninstall_walk() -> list[dict[str, dict[str, Any]]]:
    """The aws example with stackDeletionPolicy: Delete, walked to its ready state."""
    xr = xr_of("aws")
    xr["spec"]["clusters"][0]["stackDeletionPolicy"] = "Delete"
    return walk(xr)


@pytest.fixture(scope="module")
def aws_walk() -> list[dict[str, dict[str, Any]]]:
    return walk(xr_of("aws"))


# --------------------------------------------------------------------------- a model's objects


@pytest.mark.parametrize("cloud", CLOUDS)
@pytest.mark.parametrize("serving", ["deployment", "knative"])
def test_every_fleet_object_is_deleted_with_the_model(cloud: str, serving: str) -> None:
    """Workload, Service, scaler, route, monitor and Namespace all carry Delete."""
    exposure = {
        "host": "m.example.com",
        "tlsSecretName": "m-tls",
        "allowedSourceRanges": ["203.0.113.0/24"],
    }
    spec = fleet_spec(
        cloud,
        serving=serving,
        mesh="istio",
        ingress="contour",
        observability="full",
        exposure=exposure if serving == "deployment" else None,
    )
    objects = [c for c in fleet.build("m", spec, FunctionInput()) if c.kind == "Object"]
    kinds = {c.body["spec"]["forProvider"]["manifest"]["kind"] for c in objects}
    want = {"Namespace", "PodMonitor"} | (
        {"Service"} if serving == "knative" else {"StatefulSet", "Service", "ScaledObject"}
    )
    if serving == "deployment":
        want.add("HTTPProxy")
    assert want <= kinds
    for c in objects:
        assert c.body["spec"]["managementPolicies"] == DELETABLE_MANAGEMENT_POLICIES, c.key
    assert "Delete" in DELETABLE_MANAGEMENT_POLICIES


@pytest.mark.parametrize("cloud", CLOUDS)
def test_the_provider_config_stays_until_the_models_namespace_is_gone(cloud: str) -> None:
    out = {c.key: c for c in fleet.build("m", fleet_spec(cloud), FunctionInput())}
    usage = out["model-usage-providerconfig"]
    assert usage.kind == "ClusterUsage"
    spec = usage.body["spec"]
    assert spec["of"] == {
        "apiVersion": "kubernetes.crossplane.io/v1alpha1",
        "kind": "ProviderConfig",
        "resourceRef": {"name": "pc-k8s"},
    }
    # The Namespace Object is the last to go: Kubernetes empties the namespace first.
    namespace = out["model-object-namespace"]
    assert spec["by"]["resourceSelector"] == {
        "matchControllerRef": True,
        "matchLabels": namespace.body["metadata"]["labels"],
    }
    assert spec["replayDeletion"] is True
    assert [g.key for g in usage.gates] == ["model-object-namespace"]


def test_statefulset_volumes_go_with_the_model() -> None:
    out = {c.key: c for c in fleet.build("m", fleet_spec("aws"), FunctionInput())}
    sts = out["model-object-statefulset"].body["spec"]["forProvider"]["manifest"]
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"


# --------------------------------------------------------------------------- platform order


def test_node_pool_stays_until_the_models_objects_are_gone(aws_walk) -> None:
    final = aws_walk[-1]
    usage = final["aws-east-nodepool-used-by-fleet-llama2-objects"]
    assert usage["spec"]["of"]["kind"] == "NodeGroup"
    # Crossplane labels what a nested fleet composes with the root XR's name
    # (crossplane.io/composite is the platform's, not the fleet's): the fleet's
    # cluster and model labels pick this cluster's fleet.
    labels = {
        COMPOSITE_LABEL: xr_of("aws")["metadata"]["name"],
        naming.LABEL_CLUSTER: "aws-east",
        naming.LABEL_FLEET: "llama2",
        naming.LABEL_ROLE: "object-namespace",
    }
    assert usage["spec"]["by"] == {
        "apiVersion": "kubernetes.crossplane.io/v1alpha2",
        "kind": "Object",
        "resourceSelector": {"matchLabels": labels},
    }
    # The fleet labels its Namespace Object so (a fleet's resources carry the root's
    # composite label once Crossplane composes them; the function sets the rest).
    fleet_spec = final["aws-east-fleet-llama2"]["spec"]
    ns = {c.key: c for c in fleet.build("llama2", FleetSpec.model_validate(fleet_spec), FunctionInput())}
    own = ns["model-object-namespace"].body["metadata"]["labels"]
    assert {k: v for k, v in labels.items() if k != COMPOSITE_LABEL}.items() <= own.items()
    # Twice (function.usages.pair), and nothing names the fleet XR, which goes before
    # its Namespace Object (its child) in any case.
    assert final["aws-east-nodepool-also-used-by-fleet-llama2-objects"]["spec"] == usage["spec"]
    assert "aws-east-nodepool-used-by-fleet-llama2" not in final


@pytest.mark.parametrize("case", ["multicloud", "development", "aws"])
def test_every_usage_edge_is_composed_twice(case: str) -> None:
    """Two ClusterUsages per edge, one per key, equal bodies (``function.usages`` says why).

    Crossplane 2.1.4 drops the in-use label from what a deleted Usage held when a
    stale count finds one other Usage; with every edge doubled, the one other
    Usage it can find is its twin, whose user is already gone.
    """
    xr = xr_of(case)
    final = walk(xr)[-1]
    found = {k: b for k, b in final.items() if b["kind"] == "ClusterUsage"}
    # Each fleet's own usage, composed by the fleet: twice as well.
    for model in xr["spec"]["models"]:
        for key, body in final.items():
            if body["kind"] != "XOllamaFleet" or body["spec"]["name"] != model["name"]:
                continue
            spec = FleetSpec.model_validate(body["spec"])
            inner = {c.key: c.body for c in fleet.build(model["name"], spec, FunctionInput())}
            pc = inner["model-usage-providerconfig"]
            assert inner["model-usage-providerconfig-twin"] == pc, key
    assert found
    twins = {k for k in found if "-also-used-by-" in k}
    firsts = set(found) - twins
    assert twins == {k.replace("-used-by-", "-also-used-by-", 1) for k in firsts}
    for key in firsts:
        twin = found[key.replace("-used-by-", "-also-used-by-", 1)]
        assert twin["spec"] == found[key]["spec"], key
        assert twin["metadata"]["labels"] == found[key]["metadata"]["labels"], key


def test_removing_a_model_removes_its_fleet_and_its_usages(aws_walk) -> None:
    xr = xr_of("aws")
    xr["spec"]["models"] = []
    wanted = desired(run(request(xr, aws_walk[-1])))
    assert not [k for k in wanted if "fleet-llama2" in k]
    # Crossplane deletes what is no longer desired; the fleet's Objects then delete
    # their cluster objects (Delete policy) while the ClusterUsages above hold the
    # pool and the ProviderConfig.
    assert "aws-east-nodepool" in wanted




def test_the_shared_stack_stays_by_default(aws_walk) -> None:
    final = aws_walk[-1]
    in_cluster = [
        b
        for k, b in final.items()
        if b["kind"] in {"Release", "Object"} and not any(r in k for r in GATEWAY_ROUTING)
    ]
    assert in_cluster
    for body in in_cluster:
        assert body["spec"]["managementPolicies"] == IN_CLUSTER_MANAGEMENT_POLICIES
    routing = [b for k, b in final.items() if any(r in k for r in GATEWAY_ROUTING)]
    assert routing
    for body in routing:
        assert body["spec"]["managementPolicies"] == DELETABLE_MANAGEMENT_POLICIES
    assert not [k for k in final if k.endswith("-objects") and "release" in k]


def test_stack_uninstall_deletes_every_component(uninstall_walk) -> None:
    final = uninstall_walk[-1]
    in_cluster = [b for b in final.values() if b["kind"] in {"Release", "Object"}]
    assert len(in_cluster) > 10
    for body in in_cluster:
        assert body["spec"]["managementPolicies"] == DELETABLE_MANAGEMENT_POLICIES


def test_stack_uninstall_runs_in_reverse_dependency_order(uninstall_walk) -> None:
    """Creation edges (a component waits for another) become deletion edges."""
    final = uninstall_walk[-1]
    found = {k: b for k, b in final.items() if b["kind"] == "ClusterUsage"}
    edges = {
        (
            b["spec"]["of"]["resourceSelector"]["matchLabels"][naming.LABEL_ROLE],
            b["spec"]["by"]
            .get("resourceSelector", {})
            .get("matchLabels", {})
            .get(naming.LABEL_ROLE),
        )
        for b in found.values()
    }
    # istiod is installed after istio-base, so it is uninstalled before it.
    assert ("release-istio-base", "release-istiod") in edges
    # The model's objects go before what they run on: GPU operator, mesh, KEDA.
    fleet_edges = {of for of, by in edges if by == "object-namespace"}
    assert {"release-gpu-operator", "release-istiod", "release-keda", "nodepool"} <= fleet_edges


# The stack's deletion order with stackDeletionPolicy: Delete and the default
# components, written out: what is held -> what holds it (goes first). Each is a
# creation edge read the other way round: the holder is created only once what it
# holds is ready (its CRDs, its operator, its control plane).
STACK_DELETION_ORDER: dict[str, set[str]] = {
    # istiod needs istio-base's CRDs; the gateways and telemetry need istiod.
    "release-istio-base": {"release-istiod"},
    "release-istiod": {
        "release-istio-ingressgateway",
        "release-istio-egressgateway",
        "object-istio-telemetry",
        "object-servicemonitor-istiod",
    },
    # Rook: the operator, then the CSI drivers, then the cluster that uses both.
    "release-rook-ceph": {"release-ceph-csi-drivers", "release-rook-ceph-cluster"},
    "release-ceph-csi-drivers": {"release-rook-ceph-cluster"},
    # kube-prometheus-stack ships the monitoring CRDs: every ServiceMonitor, the
    # OTel collectors and the charts that render monitors (Contour, the Ceph cluster).
    "release-kube-prometheus-stack": {
        "release-contour",
        "release-rook-ceph-cluster",
        "object-otel-collector",
        "object-otel-logs",
        "object-servicemonitor-cilium-agent",
        "object-servicemonitor-cilium-envoy",
        "object-servicemonitor-cilium-operator",
        "object-servicemonitor-hubble",
        "object-servicemonitor-grafana-operator",
        "object-servicemonitor-istiod",
        "object-servicemonitor-jaeger",
        "object-servicemonitor-keda-operator-metrics-apiserver",
        "object-servicemonitor-kyverno",
        "object-servicemonitor-loki",
        "object-servicemonitor-opentelemetry-operator",
    },
    # Each component's ServiceMonitor waits for the component (its Service).
    "release-cilium": {
        "object-servicemonitor-cilium-agent",
        "object-servicemonitor-cilium-envoy",
        "object-servicemonitor-cilium-operator",
        "object-servicemonitor-hubble",
    },
    "release-keda": {"object-servicemonitor-keda-operator-metrics-apiserver"},
    "release-jaeger": {"object-servicemonitor-jaeger"},
    "release-loki": {"object-servicemonitor-loki"},
    # Operators before the custom resources they serve.
    "release-kyverno": {
        "object-clusterpolicy-require-gpu-limits",
        "object-clusterpolicy-require-storage-quota",
        "object-servicemonitor-kyverno",
    },
    "release-grafana-operator": {
        "object-grafana",
        "object-grafana-dashboard-ollama-gpu",
        "object-grafana-datasource-jaeger",
        "object-grafana-datasource-loki",
        "object-grafana-datasource-prometheus",
        "object-servicemonitor-grafana-operator",
    },
    "release-opentelemetry-operator": {
        "object-otel-collector",
        "object-otel-logs",
        "object-servicemonitor-opentelemetry-operator",
    },
}


# Edges only one cloud's stack has: GKE's own DCGM exporter (its ServiceMonitor kind).
CLOUD_DELETION_ORDER: dict[str, dict[str, set[str]]] = {
    "gcp": {
        "release-kube-prometheus-stack": {
            "object-gpu-metrics-daemonset",
            "object-gpu-metrics-service",
            "object-gpu-metrics-servicemonitor",
        }
    }
}


@pytest.mark.parametrize("cloud", CLOUDS)
def test_every_creation_edge_of_the_stack_is_a_deletion_edge(cloud: str) -> None:
    ctx = cluster_context(cloud, stackDeletionPolicy="Delete")
    composed = stack.build(ctx)

    def role(body: dict[str, Any]) -> str:
        return str(body["resourceSelector"]["matchLabels"][naming.LABEL_ROLE])

    order = usages.stack_order(ctx, composed)
    edges = sorted(
        (role(u.body["spec"]["of"]), role(u.body["spec"]["by"]))
        for u in order
        if "-also-used-by-" not in u.key
    )
    # Each edge twice (function.usages.pair): the twin has the same body.
    twins = {u.key: u.body for u in order if "-also-used-by-" in u.key}
    assert twins == {
        u.key.replace("-used-by-", "-also-used-by-", 1): u.body for u in order if u.key not in twins
    }
    table = [STACK_DELETION_ORDER, CLOUD_DELETION_ORDER.get(cloud, {})]
    expected = sorted((held, by) for order in table for held, users in order.items() for by in users)
    assert len(expected) == 42 + (3 if cloud == "gcp" else 0)
    assert edges == expected, (
        f"missing {sorted(set(expected) - set(edges))}, unexpected {sorted(set(edges) - set(expected))}"
    )
    # Every ordered role is composed on this cluster (the table names real resources).
    roles = {c.body["metadata"]["labels"][naming.LABEL_ROLE] for c in composed}
    assert {r for edge in expected for r in edge} <= roles
    # Orphan (the default) adds no stack ordering: nothing of the stack is deleted.
    assert usages.build(cluster_context(cloud), stack.build(cluster_context(cloud))) == []


def test_stack_uninstall_usages_only_name_this_clusters_resources(uninstall_walk) -> None:
    final = uninstall_walk[-1]
    for key, body in final.items():
        if body["kind"] != "ClusterUsage":
            continue
        assert key.startswith("aws-east-")
        of = body["spec"]["of"]["resourceSelector"]
        assert of["matchControllerRef"] is True
        assert of["matchLabels"][naming.LABEL_CLUSTER] == "aws-east"


def test_unchanged_claims_keep_their_objects(aws_walk) -> None:
    """Rendering the final stage again wants exactly what is observed (nothing deleted)."""
    final = aws_walk[-1]
    wanted = desired(run(request(xr_of("aws"), copy.deepcopy(final))))
    assert set(wanted) == set(final)


# --------------------------------------------------------------------------- charts' own guards


def _releases_of(case: str, policy: str, component: str) -> list[dict[str, Any]]:
    """The Releases of ``component`` in ``case``'s ready state with every cluster's stackDeletionPolicy ``policy``."""
    xr = xr_of(case)
    for cluster in xr["spec"]["clusters"]:
        cluster["stackDeletionPolicy"] = policy
    releases = [
        body
        for body in desired(run(request(xr, walk(xr)[-1]))).values()
        if body["kind"] == "Release" and body["metadata"]["annotations"][naming.EXTERNAL_NAME] == component
    ]
    assert releases
    return releases


@pytest.mark.parametrize("policy", ["Delete", "Orphan"])
def test_longhorn_uninstall_is_confirmed_only_when_the_claim_removes_the_stack(policy: str) -> None:
    """Longhorn's pre-delete hook refuses to run unless deletingConfirmationFlag is true.

    Without it a Release deleted with ``stackDeletionPolicy: Delete`` never
    finishes; with ``Orphan`` the guard stays, against an uninstall by hand.
    """
    releases = _releases_of("development", policy, "longhorn")
    for release in releases:
        settings = release["spec"]["forProvider"]["values"]["defaultSettings"]
        if policy == "Delete":
            assert settings["deletingConfirmationFlag"] is True
            assert "Delete" in release["spec"]["managementPolicies"]
        else:
            assert "deletingConfirmationFlag" not in settings


@pytest.mark.parametrize("policy", ["Delete", "Orphan"])
def test_kyverno_uninstall_does_not_wait_for_roles_that_come_back(policy: str) -> None:
    """With ``stackDeletionPolicy: Delete`` Kyverno is installed without helm's wait.

    helm's wait applies to the uninstall too, and there it waits for the chart's
    aggregated ClusterRoles, which kube-controller-manager's aggregation controller
    re-creates (server-side apply) while helm deletes them: the Release stayed
    Deleting for its whole waitTimeout on a real cluster. Retained, the wait stays.
    """
    releases = _releases_of("development", policy, "kyverno")
    for release in releases:
        if policy == "Delete":
            assert "wait" not in release["spec"]["forProvider"]
            assert "Delete" in release["spec"]["managementPolicies"]
        else:
            assert release["spec"]["forProvider"]["wait"] is True
