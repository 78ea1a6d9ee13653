"""A small Kubernetes API client for the end-to-end harness (TLS client certificate).

kubectl applies files; the tests and the simulated provider read and patch
through this client, which costs one HTTPS request instead of one process.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ApiError(RuntimeError):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body[:500]}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Kind:
    """Where a kind lives in the API."""

    group: str
    version: str
    plural: str
    namespaced: bool

    def path(self, name: str = "", namespace: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


SECRET = Kind("", "v1", "secrets", namespaced=True)
NAMESPACE = Kind("", "v1", "namespaces", namespaced=False)
EVENT = Kind("", "v1", "events", namespaced=True)
CRD = Kind("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
XRD = Kind("apiextensions.crossplane.io", "v1", "compositeresourcedefinitions", namespaced=False)
FUNCTION = Kind("pkg.crossplane.io", "v1", "functions", namespaced=False)
FUNCTION_REVISION = Kind("pkg.crossplane.io", "v1", "functionrevisions", namespaced=False)
PLATFORM_XR = Kind("openhands.ai", "v1alpha1", "xollamaplatforms", namespaced=False)
FLEET_XR = Kind("openhands.ai", "v1alpha1", "xollamafleets", namespaced=False)
PLATFORM_CLAIM = Kind("openhands.ai", "v1alpha1", "ollamaplatforms", namespaced=True)
FLEET_CLAIM = Kind("openhands.ai", "v1alpha1", "ollamafleets", namespaced=True)


# client-go's limit for retrying an answer that says Retry-After.
MAX_THROTTLED = 10


def _retry_after(header: str | None) -> float:
    """Seconds a 429 asks to wait (1 when it does not say), at most 10."""
    try:
        return min(max(float(header or 1), 0.1), 10.0)
    except ValueError:
        return 1.0


class Kube:
    """Requests against one API server, authenticated by a client certificate."""

    def __init__(self, host: str, port: int, ca: Path, cert: Path, key: Path) -> None:
        self.host, self.port = host, port
        self.ctx = ssl.create_default_context(cafile=str(ca))
        self.ctx.load_cert_chain(str(cert), str(key))
        self._local = threading.local()
        self._kinds: dict[tuple[str, str], Kind] = {}

    def _conn(self) -> http.client.HTTPSConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=30)
            self._local.conn = conn
        return conn

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
    ) -> Any:
        """One request; the decoded JSON answer. Raises ApiError for non-2xx."""
        if query:
            path += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        failures = throttled = 0
        while True:
            conn = self._conn()
            try:
                conn.request(method, path, body=data, headers=headers)
                rsp = conn.getresponse()
                text = rsp.read().decode()
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                failures += 1
                if failures == 3:
                    raise
                time.sleep(0.5)
                continue
            # 429 asks the client to come back (e.g. "storage is (re)initializing" while a
            # new CRD's storage starts): retried after Retry-After, as client-go does.
            if rsp.status == 429 and throttled < MAX_THROTTLED:
                throttled += 1
                time.sleep(_retry_after(rsp.getheader("Retry-After")))
                continue
            break
        if rsp.status >= 300:
            raise ApiError(rsp.status, text)
        return json.loads(text) if text else None

    def ready(self) -> bool:
        """Whether /readyz answers ok."""
        try:
            conn = self._conn()
            conn.request("GET", "/readyz")
            rsp = conn.getresponse()
            ok = rsp.status == 200 and rsp.read().strip() == b"ok"
        except (OSError, http.client.HTTPException):
            self._local.conn = None
            return False
        return ok

    def get(self, kind: Kind, name: str, namespace: str = "") -> dict[str, Any] | None:
        """One object, or None when it does not exist."""
        try:
            return self.request("GET", kind.path(name, namespace))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(
        self, kind: Kind, namespace: str = "", selector: str = ""
    ) -> list[dict[str, Any]]:
        """Every object of ``kind`` (in ``namespace`` when given)."""
        query = {"labelSelector": selector} if selector else None
        try:
            out = self.request("GET", kind.path(namespace=namespace), query=query)
        except ApiError as exc:
            if exc.status == 404:
                return []
            raise
        return list(out.get("items") or [])

    def patch_status(self, kind: Kind, name: str, patch: dict[str, Any], namespace: str = "") -> Any:
        """Merge-patch the status subresource."""
        return self.request(
            "PATCH",
            kind.path(name, namespace) + "/status",
            patch,
            content_type="application/merge-patch+json",
        )

    def patch(self, kind: Kind, name: str, patch: dict[str, Any], namespace: str = "") -> Any:
        """Merge-patch an object."""
        return self.request(
            "PATCH", kind.path(name, namespace), patch, content_type="application/merge-patch+json"
        )

    def delete(self, kind: Kind, name: str, namespace: str = "") -> None:
        """Delete an object (foreground is Crossplane's business; this is a plain delete)."""
        try:
            self.request("DELETE", kind.path(name, namespace))
        except ApiError as exc:
            if exc.status != 404:
                raise

    def kind(self, api_version: str, kind: str) -> Kind:
        """Resolve apiVersion + kind through the installed CRDs (cached)."""
        group, _, version = api_version.rpartition("/")
        key = (api_version, kind)
        if key not in self._kinds:
            for crd in self.list(CRD):
                spec = crd["spec"]
                for v in spec["versions"]:
                    self._kinds[(f"{spec['group']}/{v['name']}", spec["names"]["kind"])] = Kind(
                        spec["group"], v["name"], spec["names"]["plural"], spec["scope"] == "Namespaced"
                    )
        if key not in self._kinds:
            msg = f"no CRD serves {kind} in {api_version}"
            raise KeyError(msg)
        found = self._kinds[key]
        assert (found.group, found.version) == (group, version)
        return found

    def ref(self, ref: dict[str, Any]) -> dict[str, Any] | None:
        """The object an XR's resourceRef points at, or None."""
        kind = self.kind(ref["apiVersion"], ref["kind"])
        return self.get(kind, ref["name"], ref.get("namespace", ""))


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    """One condition of ``obj`` ({} when absent)."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


# Called on every poll; raises when a process the harness started has died.
GUARDS: list[Callable[[], None]] = []

# What a state that has not converged yet legitimately answers: the object is not
# created yet (404) or was written meanwhile (409). Anything else from a probe (a
# KeyError or TypeError from a typo, a 4xx the request earned) fails the wait at
# once, with the probe's own error.
NOT_YET = frozenset({404, 409})
# The API server or a webhook busy or restarting (5xx, a dropped connection) is
# waited out for this long in a row, then fails the wait with its error.
SERVER_ERRORS = frozenset({500, 502, 503, 504})
SERVER_ERROR_GRACE_S = 20.0


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, ApiError):
        return exc.status in SERVER_ERRORS
    return isinstance(exc, (OSError, http.client.HTTPException))


def wait_for(
    what: str,
    probe: Callable[[], Any],
    timeout: float,
    interval: float = 1.0,
    *,
    grace: float = SERVER_ERROR_GRACE_S,
) -> tuple[Any, float]:
    """Call ``probe`` until it returns something truthy; (value, seconds).

    A 404 or 409 from the probe counts as "not yet"; a 5xx or a dropped
    connection too, for at most ``grace`` seconds in a row, after which it is
    raised. Any other exception is raised at once. On timeout the error names
    the last value and the last exception the probe gave.
    """
    start = time.monotonic()
    value: Any = None
    error: BaseException | None = None
    failing_since: float | None = None
    while True:
        for guard in GUARDS:
            guard()
        try:
            value = probe()
        except (ApiError, OSError, http.client.HTTPException) as exc:
            error = exc
            now = time.monotonic()
            if isinstance(exc, ApiError) and exc.status in NOT_YET:
                failing_since = None
            elif _transient(exc):
                failing_since = now if failing_since is None else failing_since
                if now - failing_since > grace:
                    exc.add_note(f"while waiting for {what}: failing for {now - failing_since:.0f}s")
                    raise
            else:
                exc.add_note(f"while waiting for {what}")
                raise
        else:
            failing_since = None
            if value:
                return value, time.monotonic() - start
        if time.monotonic() - start > timeout:
            last = f"{type(error).__name__}: {error}"[:800] if error is not None else "none"
            msg = (
                f"timed out after {timeout:.0f}s waiting for {what}; "
                f"last value: {str(value)[:800]}; last error: {last}"
            )
            raise TimeoutError(msg) from error
        time.sleep(interval)
