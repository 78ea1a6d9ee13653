"""--tls-certs-dir: a client without a certificate is refused, one with it is served."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import sys

import grpc
import pytest
import yaml
from crossplane.function.proto.v1 import run_function_pb2 as fnv1
from crossplane.function.proto.v1 import run_function_pb2_grpc as grpcv1
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from scripts.render import request
from tests import toolchain

# Fixed validity window around the test run; certificates are test material only.
NOW = datetime.datetime.now(tz=datetime.UTC)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert(subject: str, key, issuer_name, issuer_key, *, ca: bool = False, server: bool = False):
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(minutes=5))
        .not_valid_after(NOW + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    ca_key = _key()
    ca = _cert("test-ca", ca_key, None, ca_key, ca=True)
    server_key, client_key = _key(), _key()
    server = _cert("function", server_key, ca.subject, ca_key, server=True)
    client = _cert("crossplane", client_key, ca.subject, ca_key)
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    return {
        "ca": pem(ca),
        "server_crt": pem(server),
        "server_key": _pem_key(server_key),
        "client_crt": pem(client),
        "client_key": _pem_key(client_key),
    }


@pytest.fixture(scope="module")
def tls_port(pki: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory):
    certs = tmp_path_factory.mktemp("certs")
    (certs / "tls.crt").write_bytes(pki["server_crt"])
    (certs / "tls.key").write_bytes(pki["server_key"])
    (certs / "ca.crt").write_bytes(pki["ca"])
    with toolchain.function_server(
        executable=[sys.executable, "-m", "function.main"], extra=["--tls-certs-dir", str(certs)]
    ) as port:
        yield port


def _call(port: int, creds: grpc.ChannelCredentials) -> fnv1.RunFunctionResponse:
    xr = yaml.safe_load((toolchain.ROOT / "examples" / "existing" / "xr.yaml").read_text())
    with grpc.secure_channel(
        f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", "localhost")]
    ) as channel:
        return grpcv1.FunctionRunnerServiceStub(channel).RunFunction(request(xr), timeout=10)


def test_client_with_certificate_is_served(pki: dict[str, bytes], tls_port: int) -> None:
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki["ca"],
        private_key=pki["client_key"],
        certificate_chain=pki["client_crt"],
    )
    rsp = _call(tls_port, creds)
    assert len(rsp.desired.resources) > 0


def test_client_without_certificate_is_refused(pki: dict[str, bytes], tls_port: int) -> None:
    creds = grpc.ssl_channel_credentials(root_certificates=pki["ca"])
    with pytest.raises(grpc.RpcError) as err:
        _call(tls_port, creds)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_plaintext_client_is_refused(tls_port: int) -> None:
    xr = yaml.safe_load((toolchain.ROOT / "examples" / "existing" / "xr.yaml").read_text())
    with grpc.insecure_channel(f"127.0.0.1:{tls_port}") as channel:
        with pytest.raises(grpc.RpcError):
            grpcv1.FunctionRunnerServiceStub(channel).RunFunction(request(xr), timeout=5)


def test_server_refuses_to_start_without_credentials() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "function.main", "--address", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=toolchain.ROOT,
    )
    assert done.returncode != 0
    assert "no credentials were provided" in done.stderr
