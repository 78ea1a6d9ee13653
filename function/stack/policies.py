"""Kyverno and the platform's two ClusterPolicies.

The seed's policies, in today's form and scoped the way DESIGN.md decides:

- ``require-gpu-limits``: every model pod has at least one container with an
  ``nvidia.com/gpu`` limit. The seed's pattern required the limit on *every*
  container, which the mesh sidecars (Linkerd's proxy) and Knative's
  queue-proxy can never satisfy; the existence anchor ``^(containers)`` asks
  for at least one.
- ``require-storage-quota``: every PersistentVolumeClaim in a model namespace
  requests at most ``policy.maxStorageRequest``. Applied cluster-wide, the
  seed's 1Ti MinIO volumes would break its own 100Gi limit.

One scoping serves both policies: **model namespaces**, the namespaces labelled
``MODEL_NAMESPACE_LABEL: "true"``; ``require-gpu-limits`` further selects the
model pods by ``MODEL_POD_LABEL: MODEL_POD_LABEL_VALUE``. The fleet builder puts
these labels on the namespaces and pods it creates (``model_namespace_labels``,
``model_pod_labels``).

``validationFailureAction`` at the policy level is deprecated: each rule carries
``validate.failureAction`` (``Enforce`` for policies ``enforce``, ``Audit`` for
``audit``), and ``background: true`` reports existing resources too.
"""

from __future__ import annotations

from typing import Any

from function import naming, wrap
from function.composed import Composed, Gate, Need
from function.context import ClusterContext
from function.models.common import Policies, Profile

KYVERNO_NAMESPACE = "kyverno"

MODEL_NAMESPACE_LABEL = naming.MODEL_NAMESPACE_LABEL
MODEL_NAMESPACE_LABEL_VALUE = "true"
MODEL_POD_LABEL = naming.MODEL_POD_LABEL
MODEL_POD_LABEL_VALUE = naming.MODEL_POD_LABEL_VALUE

GPU_RESOURCE = "nvidia.com/gpu"
REQUIRE_GPU_LIMITS = "require-gpu-limits"
REQUIRE_STORAGE_QUOTA = "require-storage-quota"

FAILURE_ACTIONS = {Policies.ENFORCE: "Enforce", Policies.AUDIT: "Audit"}


def model_namespace_labels() -> dict[str, str]:
    """Labels that put a namespace under the platform's policies."""
    return {MODEL_NAMESPACE_LABEL: MODEL_NAMESPACE_LABEL_VALUE}


def model_pod_labels() -> dict[str, str]:
    """Labels that make a pod a model pod for ``require-gpu-limits``."""
    return {MODEL_POD_LABEL: MODEL_POD_LABEL_VALUE}


def failure_action(policies: Policies) -> str:
    """Return the rule-level ``validate.failureAction`` for ``policies`` (not ``none``)."""
    return FAILURE_ACTIONS[policies]


def _model_namespaces() -> dict[str, Any]:
    return {"matchLabels": model_namespace_labels()}


def require_gpu_limits(action: str) -> dict[str, Any]:
    """Build the ClusterPolicy that requires a GPU limit on model pods."""
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": REQUIRE_GPU_LIMITS,
            "annotations": {
                "policies.kyverno.io/title": "Require GPU limits",
                "policies.kyverno.io/description": (
                    "Model pods must set an nvidia.com/gpu limit on at least one container."
                ),
            },
        },
        "spec": {
            "background": True,
            "rules": [
                {
                    "name": "check-gpu-limits",
                    "match": {
                        "any": [
                            {
                                "resources": {
                                    "kinds": ["Pod"],
                                    "selector": {"matchLabels": model_pod_labels()},
                                    "namespaceSelector": _model_namespaces(),
                                }
                            }
                        ]
                    },
                    "validate": {
                        "failureAction": action,
                        "message": "GPU limits are required for model pods",
                        "pattern": {
                            "spec": {
                                "^(containers)": [{"resources": {"limits": {GPU_RESOURCE: "?*"}}}]
                            }
                        },
                    },
                }
            ],
        },
    }


def require_storage_quota(action: str, max_storage_request: str) -> dict[str, Any]:
    """Build the ClusterPolicy that caps PersistentVolumeClaims in model namespaces."""
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": REQUIRE_STORAGE_QUOTA,
            "annotations": {
                "policies.kyverno.io/title": "Require storage quota",
                "policies.kyverno.io/description": (
                    "PersistentVolumeClaims in model namespaces request at most "
                    f"{max_storage_request}."
                ),
            },
        },
        "spec": {
            "background": True,
            "rules": [
                {
                    "name": "check-storage-quota",
                    "match": {
                        "any": [
                            {
                                "resources": {
                                    "kinds": ["PersistentVolumeClaim"],
                                    "namespaceSelector": _model_namespaces(),
                                }
                            }
                        ]
                    },
                    "validate": {
                        "failureAction": action,
                        "message": (
                            f"Storage requests must be within quota (<= {max_storage_request})"
                        ),
                        "pattern": {
                            "spec": {
                                "resources": {"requests": {"storage": f"<= {max_storage_request}"}}
                            }
                        },
                    },
                }
            ],
        },
    }


def kyverno_values(ctx: ClusterContext) -> dict[str, Any]:
    """Values of the Kyverno chart: the documented HA replica counts in production."""
    if ctx.platform.profile is not Profile.PRODUCTION:
        return {}
    return {
        # The admission controller needs three replicas for HA (two is refused).
        "admissionController": {"replicas": 3},
        "backgroundController": {"replicas": 2},
        "cleanupController": {"replicas": 2},
        "reportsController": {"replicas": 2},
    }


def build(ctx: ClusterContext) -> list[Composed]:
    """Kyverno and its ClusterPolicies on one cluster ([] for policies ``none``).

    Kyverno is installed with helm's wait, except when the claim uninstalls the
    stack (``stackDeletionPolicy: Delete``): helm then also waits, on uninstall,
    for every deleted object to be gone, and the chart's aggregated ClusterRoles
    (``kyverno:admission-controller`` and three more) come back while it waits.
    kube-controller-manager's clusterrole-aggregation controller (v1.34
    ``pkg/controller/clusterroleaggregation``, ``applyClusterRoles``) writes an
    aggregated role's rules by server-side apply, which creates the role anew
    when helm has just deleted it and the controller's cache still holds it (the
    roles it aggregates go in the same uninstall). Seen for real: the Release
    stayed Deleting for its whole ``waitTimeout``. Readiness does not rest on the
    wait: the ClusterPolicies wait for the Release and are Ready only once
    Kyverno's admission controller serves them.
    """
    policies = ctx.components.policies
    if policies is Policies.NONE:
        return []
    action = failure_action(policies)
    kyverno = wrap.release(
        ctx,
        "kyverno",
        chart="kyverno",
        namespace=KYVERNO_NAMESPACE,
        values=kyverno_values(ctx),
        wait=not ctx.uninstalls,
    )
    after = (Gate(wrap.release_key(ctx.name, "kyverno"), Need.READY),)
    return [
        kyverno,
        wrap.k8s_object(
            ctx, f"clusterpolicy-{REQUIRE_GPU_LIMITS}", require_gpu_limits(action), after=after
        ),
        wrap.k8s_object(
            ctx,
            f"clusterpolicy-{REQUIRE_STORAGE_QUOTA}",
            require_storage_quota(action, ctx.platform.max_storage_request),
            after=after,
        ),
    ]
