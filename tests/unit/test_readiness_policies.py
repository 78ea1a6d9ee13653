"""Every Object's readiness policy is one its kind can satisfy.

provider-kubernetes' ``DeriveFromObject`` makes an Object Ready only when the
object it manages carries a condition of type ``Ready`` with status ``True``
(internal/controller/cluster/object/object.go at v1.2.1: an object without
status or without that condition is Unavailable for ever). So it is used only
for kinds whose controller writes ``Ready``, shown below from each operator's
source at the version the stack pins; every other kind is ready on creation
(``SuccessfulCreate``) or by a CEL query on what its controller does write.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from function.stack import observability

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = sorted((ROOT / "tests" / "golden").glob("*.yaml"))

# (group, kind) -> where its controller writes the Ready condition.
WRITES_READY = {
    ("keda.sh", "ScaledObject"): (
        "kedacore/keda v2.20.2 controllers/keda/scaledobject_controller.go: "
        "Ready True, reason ScaledObjectReady"
    ),
    ("kyverno.io", "ClusterPolicy"): (
        "kyverno/kyverno v1.19.0 api/kyverno/v1/policy_status.go PolicyConditionReady, "
        "set by pkg/controllers/webhook/controller.go"
    ),
    ("opentelemetry.io", "OpenTelemetryCollector"): (
        "open-telemetry/opentelemetry-operator v0.158.0 internal/status/collector/handle.go "
        "conditionTypeReady (Reconciled)"
    ),
    ("operator.knative.dev", "KnativeServing"): (
        "knative/operator v1.23.0 pkg/apis/operator/v1beta1/knativeserving_lifecycle.go: "
        "a living condition set, whose happy condition is Ready"
    ),
    ("serving.knative.dev", "Service"): "Knative Serving: a living condition set (Ready)",
}


def objects() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in GOLDEN:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "Object":
                yield path.stem, doc


def group_kind(manifest: dict[str, Any]) -> tuple[str, str]:
    api = str(manifest["apiVersion"])
    return (api.split("/", maxsplit=1)[0] if "/" in api else "", str(manifest["kind"]))


def test_derive_from_object_only_where_the_controller_writes_ready() -> None:
    seen: set[tuple[str, str]] = set()
    wrong = []
    for name, obj in objects():
        manifest = obj["spec"]["forProvider"]["manifest"]
        policy = obj["spec"]["readiness"]["policy"]
        seen.add(group_kind(manifest))
        if policy == "DeriveFromObject" and group_kind(manifest) not in WRITES_READY:
            wrong.append(f"{name}: {manifest['kind']} {manifest['metadata'].get('name')}")
        if policy == "DeriveFromCelQuery":
            assert obj["spec"]["readiness"]["celQuery"]
    assert not wrong, "DeriveFromObject on kinds that never report Ready:\n" + "\n".join(wrong)
    # the goldens cover every kind the table speaks of, and more besides
    assert set(WRITES_READY) <= seen
    assert len(seen) > len(WRITES_READY)


@pytest.mark.parametrize(
    ("kind", "condition"),
    [("GrafanaDashboard", "DashboardSynchronized"), ("GrafanaDatasource", "DatasourceSynchronized")],
)
def test_grafana_kinds_are_ready_when_the_operator_applied_them(kind: str, condition: str) -> None:
    queries = {
        obj["spec"]["readiness"].get("celQuery")
        for _, obj in objects()
        if obj["spec"]["forProvider"]["manifest"]["kind"] == kind
    }
    assert queries
    assert all(q is not None and f"c.type == '{condition}'" in q for q in queries), queries


def test_grafana_is_ready_when_its_last_stage_succeeded() -> None:
    queries = {
        obj["spec"]["readiness"].get("celQuery")
        for _, obj in objects()
        if obj["spec"]["forProvider"]["manifest"]["kind"] == "Grafana"
    }
    assert queries == {observability.CEL_GRAFANA_UP}
    assert "'complete'" in observability.CEL_GRAFANA_UP
    assert "'success'" in observability.CEL_GRAFANA_UP
