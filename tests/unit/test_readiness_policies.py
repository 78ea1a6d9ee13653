"""Every Object's readiness policy is one its kind can satisfy: the audit.

provider-kubernetes v1.3.1 (the pinned provider) makes an Object with
``DeriveFromObject`` Ready only when the object it manages carries a condition of
type ``Ready`` with status ``True``: ``internal/controller/cluster/object/object.go``
``(*external).checkDeriveFromObject`` paves ``status`` into a ``ConditionedStatus``
and asks for ``GetCondition(TypeReady)``; an object without status, or whose
controller writes other condition types, is Unavailable for ever. So
``DeriveFromObject`` is kept to kinds whose controller writes ``Ready`` at the
version the stack pins; a kind that reports readiness some other way is read by a
CEL query on what its controller does write; a kind with nothing to wait for is
ready on creation (``SuccessfulCreate``).

``AUDIT`` holds the decision and its evidence (repository, tag, file and function)
for every kind; ``test_every_composed_kind_is_audited`` enumerates every Object
the function composes for every example (rendered now from each example's final
stage, each nested XOllamaFleet walked to its ready state) and every golden
render, and fails on a kind the table lacks or a policy the table does not name.
The end-to-end suite (``tests/e2e/test_5_real.py::test_real_every_object_ready``)
then requires every Object of the claims applied for real to turn Ready, the
operators' statuses written by stand-ins that write what the cited code writes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from function.stack import observability
from scripts.render import desired, load_docs, observed_map, request, run
from scripts.stage import walk

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = sorted((ROOT / "tests" / "golden").glob("*.yaml"))
EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if (p / "xr.yaml").exists())
KUBERNETES_API = "kubernetes.crossplane.io/"

DERIVE = "DeriveFromObject"
CEL = "DeriveFromCelQuery"
CREATED = "SuccessfulCreate"


@dataclass(frozen=True)
class Audited:
    """The policy a kind's Objects use, and why (what its controller writes, where)."""

    policy: str
    evidence: str
    reads: str = ""  # for CEL: a fragment every query on this kind contains


# (API group, kind) -> the audited readiness policy with its evidence at the pinned version.
AUDIT: dict[tuple[str, str], Audited] = {
    # --- DeriveFromObject: the controller writes a condition of type Ready ---
    ("keda.sh", "ScaledObject"): Audited(
        DERIVE,
        "kedacore/keda v2.20.2 controllers/keda/scaledobject_controller.go "
        "(*ScaledObjectReconciler).Reconcile: conditions.SetReadyCondition(True, ScaledObjectReady); "
        'the type is apis/keda/v1alpha1/condition_types.go ConditionReady = "Ready"',
    ),
    ("kyverno.io", "ClusterPolicy"): Audited(
        DERIVE,
        "kyverno/kyverno v1.19.0 (chart 3.9.0) pkg/controllers/webhook/controller.go "
        "(*controller).updatePolicyStatuses: status.SetReady(ready, message); "
        'api/kyverno/v1/policy_status.go PolicyConditionReady = "Ready"',
    ),
    ("opentelemetry.io", "OpenTelemetryCollector"): Audited(
        DERIVE,
        "open-telemetry/opentelemetry-operator v0.158.0 (chart 0.122.0) "
        "internal/status/collector/handle.go HandleReconcileStatus: "
        'meta.SetStatusCondition(conditionTypeReady = "Ready", True) once reconciled',
    ),
    ("operator.knative.dev", "KnativeServing"): Audited(
        DERIVE,
        "knative/operator knative-v1.23.0 pkg/apis/operator/v1beta1/knativeserving_lifecycle.go "
        "servingCondSet = apis.NewLivingConditionSet(...), whose happy condition is Ready "
        "(knative.dev/pkg apis/condition_set.go NewLivingConditionSet: newConditionSet(ConditionReady, ...))",
    ),
    ("serving.knative.dev", "Service"): Audited(
        DERIVE,
        "knative/serving knative-v1.23.0 (the Serving operator v1.23.0 installs, "
        "cmd/operator/kodata/knative-serving/1.23.0) pkg/apis/serving/v1/service_lifecycle.go "
        "serviceCondSet = apis.NewLivingConditionSet(...): Ready",
    ),
    # --- CEL: readiness is written, but not as a Ready condition ---
    ("apps", "StatefulSet"): Audited(
        CEL,
        "kubernetes v1.34.4 pkg/controller/statefulset/stateful_set_control.go "
        "(*defaultStatefulSetControl).updateStatefulSetStatus writes replica counts "
        "(readyReplicas, availableReplicas); apps/v1 StatefulSetStatus has no Ready condition",
        reads="object.status",
    ),
    ("batch", "Job"): Audited(
        CEL,
        "kubernetes v1.34.4 pkg/controller/job/job_controller.go (*Controller).syncJob writes "
        "status.succeeded and the Complete/Failed conditions, never Ready",
        reads="object.status.succeeded",
    ),
    ("grafana.integreatly.org", "Grafana"): Audited(
        CEL,
        "grafana/grafana-operator v5.24.0 controllers/grafana_controller.go "
        "(*GrafanaReconciler).Reconcile: Status.Stage = complete, StageStatus = success and the "
        "condition GrafanaReady (conditionTypeGrafanaReady), not Ready",
        reads="object.status.stage == 'complete'",
    ),
    ("grafana.integreatly.org", "GrafanaDashboard"): Audited(
        CEL,
        "grafana/grafana-operator v5.24.0 controllers/dashboard_controller.go "
        "(*GrafanaDashboardReconciler).Reconcile sets conditionDashboardSynchronized = "
        '"DashboardSynchronized" (controllers/controller_shared.go buildSynchronizedCondition), not Ready',
        reads="c.type == 'DashboardSynchronized'",
    ),
    ("grafana.integreatly.org", "GrafanaDatasource"): Audited(
        CEL,
        "grafana/grafana-operator v5.24.0 controllers/datasource_controller.go "
        "(*GrafanaDatasourceReconciler).Reconcile sets conditionDatasourceSynchronized = "
        '"DatasourceSynchronized" (buildSynchronizedCondition), not Ready',
        reads="c.type == 'DatasourceSynchronized'",
    ),
    ("projectcontour.io", "HTTPProxy"): Audited(
        CEL,
        "projectcontour/contour (v1.33.6 in chart 0.7.0) apis/projectcontour/v1 DetailedCondition: "
        'ValidConditionType = "Valid", positive polarity, the condition Contour writes on an HTTPProxy; never Ready',
        reads="c.type == 'Valid'",
    ),
    # --- SuccessfulCreate: no controller writes Ready, nothing to wait for ---
    ("", "Namespace"): Audited(
        CREATED, "kubernetes v1.34.4 core/v1 NamespaceStatus: phase Active, conditions only while deleting"
    ),
    ("", "Service"): Audited(
        CREATED, "kubernetes v1.34.4 core/v1 ServiceStatus: loadBalancer ingress and its conditions only"
    ),
    ("", "ServiceAccount"): Audited(CREATED, "kubernetes v1.34.4 core/v1 ServiceAccount: no status"),
    ("apps", "Deployment"): Audited(
        CREATED,
        "kubernetes v1.34.4 pkg/controller/deployment/sync.go (*DeploymentController).syncDeploymentStatus: "
        "the Available and Progressing conditions, never Ready (nothing the function composes waits on it)",
    ),
    ("apps", "DaemonSet"): Audited(
        CREATED,
        "kubernetes v1.34.4 pkg/controller/daemon/daemon_controller.go (*DaemonSetsController).updateDaemonSetStatus: "
        "counts only (numberReady, desiredNumberScheduled), no conditions",
    ),
    ("monitoring.coreos.com", "ServiceMonitor"): Audited(
        CREATED,
        "prometheus-operator v0.93 (kube-prometheus-stack 88.5.3 runs v0.93.1; v0.93.0 read) "
        "pkg/apis/monitoring/v1/types.go ConfigResourceStatus: bindings[].conditions of type Accepted, never Ready",
    ),
    ("monitoring.coreos.com", "PodMonitor"): Audited(
        CREATED, "prometheus-operator v0.93 ConfigResourceStatus, as ServiceMonitor: Accepted, never Ready"
    ),
    ("sts.min.io", "PolicyBinding"): Audited(
        CREATED,
        "minio/operator v7.1.1 pkg/apis/sts.min.io/v1beta1/types.go PolicyBindingStatus: currentState and "
        "usage, no conditions (the CRD's schema prunes any)",
    ),
    ("telemetry.istio.io", "Telemetry"): Audited(
        CREATED,
        "istio 1.30.3: configuration, applied by istiod as it watches it; its IstioStatus carries no Ready "
        "condition istiod writes",
    ),
    ("gateway.networking.k8s.io", "GatewayClass"): Audited(
        CREATED,
        "envoyproxy/gateway v1.8.1 internal/gatewayapi/status/gatewayclass.go: the Accepted condition "
        "(Gateway API v1 GatewayClassConditionStatusAccepted), never Ready",
    ),
    ("gateway.networking.k8s.io", "Gateway"): Audited(
        CREATED,
        "envoyproxy/gateway v1.8.1 internal/gatewayapi/status/gateway.go: Accepted and Programmed "
        "(Gateway API v1), never Ready",
    ),
    ("gateway.envoyproxy.io", "EnvoyProxy"): Audited(
        CREATED, "envoyproxy/gateway v1.8.1 api/v1alpha1/envoyproxy_types.go EnvoyProxyStatus: empty"
    ),
    ("gateway.envoyproxy.io", "Backend"): Audited(
        CREATED,
        "envoyproxy/gateway v1.8.1 api/v1alpha1/backend_types.go BackendStatus: BackendConditionAccepted "
        '= "Accepted", never Ready',
    ),
    ("gateway.envoyproxy.io", "BackendTrafficPolicy"): Audited(
        CREATED, "envoyproxy/gateway v1.8.1: a policy's status is PolicyStatus ancestors[].conditions Accepted"
    ),
    ("gateway.envoyproxy.io", "ClientTrafficPolicy"): Audited(
        CREATED, "envoyproxy/gateway v1.8.1: PolicyStatus ancestors[].conditions Accepted, never Ready"
    ),
    ("gateway.envoyproxy.io", "SecurityPolicy"): Audited(
        CREATED, "envoyproxy/gateway v1.8.1: PolicyStatus ancestors[].conditions Accepted, never Ready"
    ),
    ("aigateway.envoyproxy.io", "AIGatewayRoute"): Audited(
        CREATED,
        "envoyproxy/ai-gateway v1.1.0 (../shared/sources) api/v1alpha1/status.go: ConditionTypeAccepted / "
        "ConditionTypeNotAccepted only",
    ),
    ("aigateway.envoyproxy.io", "AIServiceBackend"): Audited(
        CREATED, "envoyproxy/ai-gateway v1.1.0 api/v1alpha1/status.go: Accepted / NotAccepted only"
    ),
}


def group_kind(manifest: dict[str, Any]) -> tuple[str, str]:
    api = str(manifest["apiVersion"])
    return (api.split("/", maxsplit=1)[0] if "/" in api else "", str(manifest["kind"]))


def _objects_of(stage: dict[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for body in stage.values():
        if body["kind"] == "Object" and body["apiVersion"].startswith(KUBERNETES_API):
            yield body


@cache
def _fleet_objects(spec: str) -> tuple[dict[str, Any], ...]:
    xr = {"apiVersion": "openhands.ai/v1alpha1", "kind": "XOllamaFleet", "metadata": {"name": "fleet"}}
    xr["spec"] = json.loads(spec)
    stages = walk(xr)
    return tuple(_objects_of(stages[-1])) if stages else ()


@cache
def composed_objects() -> tuple[tuple[str, dict[str, Any]], ...]:
    """(where, Object) for every Object of every example and every golden render."""
    out: list[tuple[str, dict[str, Any]]] = []
    for folder in EXAMPLES:
        # Rendered now from the committed final stage, so a change to a builder shows here
        # before the goldens and stages are regenerated.
        xr = load_docs(folder / "xr.yaml")[0]
        final = sorted(folder.glob("observed-*.yaml"))[-1]
        stage = desired(run(request(xr, observed_map(load_docs(final)))))
        out += [(folder.name, obj) for obj in _objects_of(stage)]
        for body in stage.values():
            if body["kind"] == "XOllamaFleet":
                spec = json.dumps(body["spec"], sort_keys=True)
                out += [(f"{folder.name} fleet {body['spec']['name']}", o) for o in _fleet_objects(spec)]
    for path in GOLDEN:
        out += [
            (f"golden {path.stem}", doc)
            for doc in yaml.safe_load_all(path.read_text())
            if doc and doc.get("kind") == "Object"
        ]
    return tuple(out)


def test_every_composed_kind_is_audited() -> None:
    unaudited: dict[tuple[str, str], str] = {}
    wrong: list[str] = []
    seen: set[tuple[str, str]] = set()
    for where, obj in composed_objects():
        manifest = obj["spec"]["forProvider"]["manifest"]
        gk = group_kind(manifest)
        seen.add(gk)
        audit = AUDIT.get(gk)
        readiness = obj["spec"]["readiness"]
        if audit is None:
            unaudited.setdefault(gk, where)
            continue
        if readiness["policy"] != audit.policy:
            wrong.append(f"{where}: {gk} {manifest['metadata'].get('name')} is {readiness['policy']}, audited {audit.policy}")
        elif audit.policy == CEL and audit.reads not in readiness.get("celQuery", ""):
            wrong.append(f"{where}: {gk} CEL query {readiness.get('celQuery')!r} does not read {audit.reads!r}")
    assert not unaudited, "Object kinds not in AUDIT (add each with its controller's evidence):\n" + "\n".join(
        f"{gk} first in {where}" for gk, where in sorted(unaudited.items())
    )
    assert not wrong, "readiness policies that differ from the audit:\n" + "\n".join(wrong)
    # The enumeration reaches what the platforms' nested fleets compose, not only the goldens.
    assert {("apps", "StatefulSet"), ("keda.sh", "ScaledObject"), ("serving.knative.dev", "Service")} <= seen
    # No audited kind is dead weight: the table is exactly the kinds composed.
    assert set(AUDIT) - seen == set(), sorted(set(AUDIT) - seen)


def test_the_audit_names_a_source_for_every_kind() -> None:
    for gk, audit in AUDIT.items():
        assert audit.policy in {DERIVE, CEL, CREATED}, gk
        assert audit.evidence.strip(), gk
        if audit.policy == DERIVE:  # a Ready condition, shown in a named file at a named version
            assert "Ready" in audit.evidence and ".go" in audit.evidence, gk
            assert re.search(r"v\d+\.\d+\.\d+", audit.evidence), gk
        if audit.policy == CEL:
            assert audit.reads, gk


def test_an_unaudited_kind_fails_the_audit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit fails when a composed kind is missing from the table, or its policy differs."""
    monkeypatch.delitem(AUDIT, ("kyverno.io", "ClusterPolicy"))
    with pytest.raises(AssertionError, match=r"(?s)not in AUDIT.*'kyverno.io', 'ClusterPolicy'"):
        test_every_composed_kind_is_audited()
    monkeypatch.setitem(AUDIT, ("kyverno.io", "ClusterPolicy"), Audited(CREATED, "wrong on purpose"))
    with pytest.raises(AssertionError, match=r"ClusterPolicy.*is DeriveFromObject, audited SuccessfulCreate"):
        test_every_composed_kind_is_audited()


@pytest.mark.parametrize(
    ("kind", "condition"),
    [("GrafanaDashboard", "DashboardSynchronized"), ("GrafanaDatasource", "DatasourceSynchronized")],
)
def test_grafana_kinds_are_ready_when_the_operator_applied_them(kind: str, condition: str) -> None:
    queries = {
        obj["spec"]["readiness"].get("celQuery")
        for _, obj in composed_objects()
        if obj["spec"]["forProvider"]["manifest"]["kind"] == kind
    }
    assert queries
    assert all(q is not None and f"c.type == '{condition}'" in q for q in queries), queries


def test_grafana_is_ready_when_its_last_stage_succeeded() -> None:
    queries = {
        obj["spec"]["readiness"].get("celQuery")
        for _, obj in composed_objects()
        if obj["spec"]["forProvider"]["manifest"]["kind"] == "Grafana"
    }
    assert queries == {observability.CEL_GRAFANA_UP}
    assert "'complete'" in observability.CEL_GRAFANA_UP
    assert "'success'" in observability.CEL_GRAFANA_UP
