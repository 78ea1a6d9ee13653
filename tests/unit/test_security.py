"""Security defaults as tests: private buckets, TLS-only storage, no secrets, no network."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from scripts.render import desired, load_docs, observed_map, request, run

ROOT = Path(__file__).resolve().parents[2]


def final(case: str):
    folder = ROOT / "examples" / case
    xr = load_docs(folder / "xr.yaml")[0]
    observed = observed_map(load_docs(sorted(folder.glob("observed-*.yaml"))[-1]))
    return xr, observed


def test_buckets_are_private_encrypted_and_versioned() -> None:
    xr, observed = final("multicloud")
    out = desired(run(request(xr, observed)))
    pab = out["aws-east-bucket-public-access-block"]["spec"]["forProvider"]
    assert all(pab[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    sse = out["aws-east-bucket-encryption"]["spec"]["forProvider"]["rule"][0]
    assert sse["bucketKeyEnabled"] is True
    assert sse["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    versioning = out["aws-east-bucket-versioning"]["spec"]["forProvider"]
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    gcs = out["gcp-central-bucket"]["spec"]["forProvider"]
    assert gcs["uniformBucketLevelAccess"] is True
    assert gcs["publicAccessPrevention"] == "enforced"
    account = out["azure-east-storage-account"]["spec"]["forProvider"]
    assert account["minTlsVersion"] == "TLS1_2"
    assert account["httpsTrafficOnlyEnabled"] is True
    assert account["allowNestedItemsToBePublic"] is False
    assert out["azure-east-container"]["spec"]["forProvider"]["containerAccessType"] == "private"
    # no static keys where identity is used: Shared Key (account keys, SAS) and local
    # users off; the container is created through the management plane by account id
    assert account["sharedAccessKeyEnabled"] is False
    assert account["localUserEnabled"] is False
    assert account["defaultToOauthAuthentication"] is True
    assert "storageAccountIdSelector" in out["azure-east-container"]["spec"]["forProvider"]
    assert "storageAccountName" not in out["azure-east-container"]["spec"]["forProvider"]


def test_model_pods_run_as_non_root() -> None:
    xr, observed = final("fleet")
    out = desired(run(request(xr, observed)))
    pod = out["model-object-statefulset"]["spec"]["forProvider"]["manifest"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in [*pod["containers"], *pod.get("initContainers", [])]:
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"]["drop"] == ["ALL"]


def test_no_secret_data_anywhere() -> None:
    xr, observed = final("multicloud")
    rsp = run(request(xr, observed))
    blob = json.dumps(json.loads(json.dumps(desired(rsp))) | {"status": str(rsp.desired.composite)})
    blob += "".join(r.message for r in rsp.results)
    for needle in ("BEGIN CERTIFICATE", "PRIVATE KEY", "password:", "secretAccessKey", "stringData"):
        assert needle not in blob
    # ProviderConfigs refer to the kubeconfig Secret; they never carry its data
    pcs = [b for b in desired(rsp).values() if b["kind"] == "ProviderConfig"]
    assert pcs
    for pc in pcs:
        assert set(pc["spec"]["credentials"]) == {"source", "secretRef"}


def test_function_never_reaches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        msg = "the function tried to open a network connection"
        raise AssertionError(msg)

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    for case in ("multicloud", "fleet", "production"):
        xr, observed = final(case)
        assert desired(run(request(xr, observed)))
