"""The MinIO tenant as the model cache (``objectStorage: minio``), reached through MinIO's STS.

Clusters whose object storage is the in-cluster MinIO tenant have no cloud
bucket; their models cache in the tenant instead, with no keys anywhere. The
MinIO operator's STS (on by default since operator 5.0.11) trades a pod's
ServiceAccount token, bound to the audience ``sts.min.io``, for short-lived
keys limited to the MinIO policies a ``PolicyBinding`` in the tenant's
namespace grants that ServiceAccount. Per cluster:

- ``ollama-cache-setup``: a ServiceAccount in the tenant's namespace, bound to
  MinIO's built-in ``consoleAdmin`` policy, and a Job running as it that
  creates the ``ollama-models`` bucket (if missing) and the
  ``ollama-model-cache`` policy: list that bucket, read and write its objects,
  nothing else. The tenant's root credentials (the seed's Secret) are never
  read by anything the platform composes. The Job is idempotent: its pod retries
  until the tenant answers.
- per model: a ``PolicyBinding`` granting only ``ollama-model-cache`` to the
  model's ServiceAccount (``ollama`` in ``ollama-<model>``). It is deleted with
  the model, whatever ``stackDeletionPolicy`` says, so a namespace created later
  under that name inherits no access.

The fleet's pods do the exchange (fleet/cache.py); a model's fleet waits for its
binding (not for the Job: serving never waits on the cache's health). Nothing
needs turning on in the cluster, so there is no warning.
The MinIO operator must trust the cluster CA's signature of its own STS
certificate (its automatic certificates, the chart's default); the pods trust the
cluster CA from ``kube-root-ca.crt``.
"""

from __future__ import annotations

import json
from typing import Any

from function import minio_sts, naming, wrap
from function.composed import Composed, Gate, Need
from function.context import ClusterContext
from function.modelcache.backend import CacheBlock, Observed
from function.models.fleet import CacheProvider

POLICY_BINDING_API = "sts.min.io/v1beta1"
SETUP_NAME = "ollama-cache-setup"  # ServiceAccount, PolicyBinding and Job
SETUP_POLICY = "consoleAdmin"  # MinIO's built-in administrator policy
SETUP_SERVICE_ACCOUNT_OBJECT = "minio-cache-setup-serviceaccount"
SETUP_BINDING_OBJECT = "minio-cache-setup-binding"
SETUP_JOB_OBJECT = "minio-cache-setup"
BINDING_OBJECT_PREFIX = "minio-cache-binding"
# A PolicyBinding's status has no conditions (the CRD's schema has currentState
# and usage only; the API server prunes anything else), so provider-kubernetes
# could never derive Ready from it: the binding is ready once it exists, which
# is when the operator's STS honours it (it reads bindings on each exchange).
BINDING_READINESS = "SuccessfulCreate"
IDENTITY_VOLUME = "sts-identity"
SCRATCH_PATH = "/tmp"  # noqa: S108  # an emptyDir of the Job's own
ALIAS = "tenant"  # mc's name for the tenant (MC_HOST_tenant)

# The model cache's rights: list the bucket, read and write its objects.
BUCKET_ACTIONS = ("s3:GetBucketLocation", "s3:ListBucket")
OBJECT_ACTIONS = (
    "s3:AbortMultipartUpload",
    "s3:GetObject",
    "s3:ListMultipartUploadParts",
    "s3:PutObject",
)

SETUP_SCRIPT = f"""\
set -eu
printf '%s' "$CACHE_POLICY_DOCUMENT" > "$HOME/policy.json"
mc mb --ignore-existing "{ALIAS}/$CACHE_BUCKET"
mc admin policy create {ALIAS} "$CACHE_POLICY" "$HOME/policy.json"
echo "bucket $CACHE_BUCKET and policy $CACHE_POLICY are in place"
"""

# A Job is complete once one pod succeeded.
JOB_COMPLETE = "has(object.status) && has(object.status.succeeded) && object.status.succeeded >= 1"


def cache_policy() -> str:
    """Return the ``ollama-model-cache`` policy: that bucket and its objects, nothing broader."""
    bucket = f"arn:aws:s3:::{naming.MINIO_CACHE_BUCKET}"
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": list(BUCKET_ACTIONS), "Resource": [bucket]},
            {"Effect": "Allow", "Action": list(OBJECT_ACTIONS), "Resource": [f"{bucket}/*"]},
        ],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def policy_binding(name: str, namespace: str, service_account: str, policy: str) -> dict[str, Any]:
    """Return a PolicyBinding in the tenant's namespace: ``policy`` for that ServiceAccount."""
    return {
        "apiVersion": POLICY_BINDING_API,
        "kind": "PolicyBinding",
        "metadata": {"name": name, "namespace": naming.MINIO_TENANT_NAMESPACE},
        "spec": {
            "application": {"namespace": namespace, "serviceaccount": service_account},
            "policies": [policy],
        },
    }


def binding_name(model: str) -> str:
    """Return the name of ``model``'s PolicyBinding in the tenant's namespace."""
    return naming.dns_label("ollama-cache", model)


def binding_key(ctx: ClusterContext, model: str) -> str:
    """Return the key of ``model``'s PolicyBinding Object."""
    return wrap.object_key(ctx.name, f"{BINDING_OBJECT_PREFIX}-{model}")


def setup_job(image: str) -> dict[str, Any]:
    """Return the Job that creates the bucket and the cache policy in the tenant."""
    env = {
        "CACHE_BUCKET": naming.MINIO_CACHE_BUCKET,
        "CACHE_POLICY": naming.MINIO_CACHE_POLICY,
        "CACHE_POLICY_DOCUMENT": cache_policy(),
        "HOME": SCRATCH_PATH,
        "MC_CONFIG_DIR": f"{SCRATCH_PATH}/.mc",
        f"MC_HOST_{ALIAS}": naming.MINIO_ENDPOINT,
        f"MC_STS_ENDPOINT_{ALIAS}": naming.MINIO_STS_ENDPOINT,
        f"MC_WEB_IDENTITY_TOKEN_FILE_{ALIAS}": minio_sts.TOKEN_FILE,
        "SSL_CERT_FILE": minio_sts.CA_FILE,
    }
    container = {
        "name": "mc",
        "image": image,
        "command": ["/bin/sh", "-c", SETUP_SCRIPT],
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            minio_sts.identity_mount(IDENTITY_VOLUME),
            {"name": "scratch", "mountPath": SCRATCH_PATH},
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": SETUP_NAME, "namespace": naming.MINIO_TENANT_NAMESPACE},
        "spec": {
            # The tenant may still be starting: retry with the Job's back-off (10 s
            # doubling to 6 min), about three hours before the Job gives up.
            "backoffLimit": 36,
            "template": {
                "spec": {
                    "serviceAccountName": SETUP_NAME,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "restartPolicy": "OnFailure",
                    "containers": [container],
                    "volumes": [
                        minio_sts.identity_volume(IDENTITY_VOLUME),
                        {"name": "scratch", "emptyDir": {"sizeLimit": "16Mi"}},
                    ],
                }
            },
        },
    }


def composes(ctx: ClusterContext, observed: Observed) -> list[Composed]:  # noqa: ARG001  # every backend's signature
    """Build the tenant's model cache: the setup identity and Job, a binding per model."""
    # The tenant's Release only applies the Tenant (Helm cannot wait for MinIO to
    # answer): the Job retries until it does.
    tenant_applied = Gate(wrap.release_key(ctx.name, "minio-tenant"), Need.EXISTS)
    # The operator's Release (waited for) installs the PolicyBinding CRD.
    operator_ready = Gate(wrap.release_key(ctx.name, "minio-operator"), Need.READY)
    account = wrap.k8s_object(
        ctx,
        SETUP_SERVICE_ACCOUNT_OBJECT,
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": SETUP_NAME, "namespace": naming.MINIO_TENANT_NAMESPACE},
            "automountServiceAccountToken": False,
        },
        after=(tenant_applied,),
        readiness="SuccessfulCreate",  # a ServiceAccount has no status
    )
    setup_binding = wrap.k8s_object(
        ctx,
        SETUP_BINDING_OBJECT,
        policy_binding(SETUP_NAME, naming.MINIO_TENANT_NAMESPACE, SETUP_NAME, SETUP_POLICY),
        after=(operator_ready, tenant_applied),
        readiness=BINDING_READINESS,
    )
    job = wrap.k8s_object(
        ctx,
        SETUP_JOB_OBJECT,
        setup_job(ctx.platform.inputs.spec.minio_client_image),
        after=(
            tenant_applied,
            Gate(account.key, Need.EXISTS),
            Gate(setup_binding.key, Need.EXISTS),
        ),
        cel_query=JOB_COMPLETE,
    )
    out = [account, setup_binding, job]
    for model in ctx.models:
        binding = wrap.k8s_object(
            ctx,
            f"{BINDING_OBJECT_PREFIX}-{model}",
            policy_binding(
                binding_name(model),
                naming.model_namespace(model),
                naming.MODEL_SERVICE_ACCOUNT,
                naming.MINIO_CACHE_POLICY,
            ),
            after=(operator_ready, tenant_applied),
            readiness=BINDING_READINESS,
            deletable=True,  # a model's grant goes with the model, whatever the stack does
        )
        out.append(binding)
    return out


def fleet_cache(ctx: ClusterContext, observed: Observed) -> CacheBlock:  # noqa: ARG001  # every backend's signature
    """Return the ``cache`` block of the cluster's fleets: the tenant's bucket."""
    return {"provider": CacheProvider.MINIO.value, "bucket": naming.MINIO_CACHE_BUCKET}


def gates(ctx: ClusterContext, model: str, observed: Observed) -> tuple[Gate, ...]:  # noqa: ARG001  # every backend's signature
    """Return what a model's fleet waits for: the model's binding, not the setup Job.

    Serving never waits on the cache's health: a Job that fails (a tenant down
    for hours) would hold the model forever, while a pod that starts before the
    policy exists only pulls from the registry and caches nothing that time.
    """
    return (Gate(binding_key(ctx, model), Need.READY),)


def warning(ctx: ClusterContext, observed: Observed) -> None:  # noqa: ARG001  # every backend's signature
    """Return None: the tenant and the operator's STS are the platform's own."""
    return
