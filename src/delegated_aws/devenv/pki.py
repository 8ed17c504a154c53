"""Certificates, kubeconfigs and bearer tokens for the local control plane.

This module owns the control plane's identities: one throw-away CA (made with
``cryptography``) that signs the loopback serving certificate and every client
certificate, the service-account signing key pair, self-contained kubeconfigs
for any of those identities, and an in-process TokenReview webhook that lets
the apiserver accept bearer tokens for users and groups chosen at any time.
:class:`ClusterCredentials` ties them together below one work dir.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import ipaddress
import json
import re
import secrets
import ssl
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KUBERNETES_SERVICE_IP = "10.96.0.1"

AuthMethod = Literal["cert", "token"]

# ---------------------------------------------------------------- certificates


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Pki:
    """One CA that signs the serving certificate and every client certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls) -> Pki:
        key = ec.generate_private_key(ec.SECP256R1())  # Fast to make, unlike RSA.
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "delegated-aws-ca")])
        cert = (
            _builder(name, key.public_key(), issuer=name)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key=key, cert=cert)

    @property
    def ca_pem(self) -> bytes:
        return _pem_cert(self.cert)

    def issue(
        self,
        common_name: str,
        *,
        organizations: Sequence[str] = (),
        server: bool = False,
    ) -> tuple[bytes, bytes]:
        """A (cert PEM, key PEM) pair: client cert, or serving cert for loopback."""
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        # The apiserver maps O= to groups, CN= to the user name.
        attributes += [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations
        ]
        usage = ExtendedKeyUsageOID.CLIENT_AUTH
        if server:
            usage = ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            _builder(x509.Name(attributes), key.public_key(), issuer=self.cert.subject)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            builder = builder.add_extension(_serving_names(), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return _pem_cert(cert), _pem_key(key)


def _builder(
    subject: x509.Name, public_key: ec.EllipticCurvePublicKey, *, issuer: x509.Name
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # Tolerate clock skew.
        .not_valid_after(now + dt.timedelta(days=7))
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _serving_names() -> x509.SubjectAlternativeName:
    dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"]
    ips = ["127.0.0.1", "::1", KUBERNETES_SERVICE_IP]
    return x509.SubjectAlternativeName(
        [x509.DNSName(name) for name in dns]
        + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    )


def write_cluster_pki(
    pki_dir: Path, *, clients: Mapping[str, tuple[str, Sequence[str]]]
) -> Pki:
    """Create a CA and write everything a control plane is configured from.

    ``pki_dir`` (created, owner-only) gets ``ca.crt``, ``serving.crt``/``.key``,
    one ``<name>.crt``/``.key`` per entry of ``clients`` (a user name and its
    groups), and the service-account signing pair ``sa.key``/``sa.pub``.
    """
    pki_dir.mkdir(mode=0o700)
    pki = Pki.create()
    pairs = {"serving": pki.issue("127.0.0.1", server=True)}
    for name, (user, groups) in clients.items():
        pairs[name] = pki.issue(user, organizations=groups)
    files: dict[str, bytes] = {"ca.crt": pki.ca_pem}
    for name, (cert, key) in pairs.items():
        files[f"{name}.crt"], files[f"{name}.key"] = cert, key
    sa_key = ec.generate_private_key(ec.SECP256R1())
    files["sa.key"] = _pem_key(sa_key)
    files["sa.pub"] = sa_key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    for name, data in files.items():
        (pki_dir / name).write_bytes(data)
    return pki


# ---------------------------------------------------------------- kubeconfigs


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_pem: bytes,
    user: str,
    cert_pem: bytes | None = None,
    key_pem: bytes | None = None,
    token: str | None = None,
) -> Path:
    """Write a single-context kubeconfig with everything embedded."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    credentials: dict[str, str] = {}
    if cert_pem is not None and key_pem is not None:
        credentials["client-certificate-data"] = b64(cert_pem)
        credentials["client-key-data"] = b64(key_pem)
    if token is not None:
        credentials["token"] = token
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "delegated-aws",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": b64(ca_pem),
                },
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [
            {"name": user, "context": {"cluster": "delegated-aws", "user": user}}
        ],
        "current-context": user,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


# ------------------------------------------------------ token authentication


class TokenWebhook:
    """An in-process TokenReview webhook: bearer tokens for arbitrary identities.

    A static --token-auth-file is read once at start-up, so it cannot learn new
    identities; the webhook lets mint_kubeconfig(method="token") add any user
    and groups at any time.
    """

    def __init__(self, *, cert_file: Path, key_file: Path) -> None:
        self._identities: dict[str, tuple[str, list[str]]] = {}
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), self._handler_class()
        )
        self._server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="token-webhook", daemon=True
        )

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}/authenticate"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() would wait forever otherwise.
            self._server.shutdown()
        self._server.server_close()

    def add(self, user: str, groups: Sequence[str]) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._identities[token] = (user, list(groups))
        return token

    def review(self, request: dict[str, Any]) -> dict[str, Any]:
        token = request.get("spec", {}).get("token", "")
        with self._lock:
            identity = self._identities.get(token)
        status: dict[str, Any] = {"authenticated": False}
        if identity is not None:
            user, groups = identity
            status = {
                "authenticated": True,
                "user": {"username": user, "uid": user, "groups": groups},
            }
        return {
            "apiVersion": request.get("apiVersion", "authentication.k8s.io/v1"),
            "kind": "TokenReview",
            "status": status,
        }

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        webhook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                try:
                    body = json.dumps(
                        webhook.review(json.loads(self.rfile.read(length)))
                    )
                except ValueError:
                    self.send_error(400)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass  # The apiserver logs failures; this would only add noise.

        return Handler


# ------------------------------------------------------ one cluster's identities


@dataclass(frozen=True)
class ClusterCredentials:
    """Every identity of one control plane, written below its work dir.

    ``pki/`` holds the CA and keys (see :func:`write_cluster_pki`), each client
    named at creation gets ``<name>.kubeconfig``, the token webhook gets its
    config in ``token-webhook.kubeconfig``, and minted kubeconfigs go to
    ``kubeconfigs/``. The webhook is created here but not started.
    """

    workdir: Path
    server: str
    pki: Pki
    webhook: TokenWebhook

    @classmethod
    def create(
        cls,
        workdir: Path,
        *,
        server: str,
        clients: Mapping[str, tuple[str, Sequence[str]]],
    ) -> ClusterCredentials:
        pki_dir = workdir / "pki"
        pki = write_cluster_pki(pki_dir, clients=clients)
        webhook = TokenWebhook(
            cert_file=pki_dir / "serving.crt", key_file=pki_dir / "serving.key"
        )
        credentials = cls(workdir=workdir, server=server, pki=pki, webhook=webhook)
        try:
            credentials._write_configs(clients)
        except BaseException:
            webhook.stop()  # Its socket is bound already; nobody else holds it.
            raise
        return credentials

    def _write_configs(self, clients: Mapping[str, tuple[str, Sequence[str]]]) -> None:
        pki_dir = self.workdir / "pki"
        for name, (user, _) in clients.items():
            self.write(
                self.workdir / f"{name}.kubeconfig",
                user=user,
                cert_pem=(pki_dir / f"{name}.crt").read_bytes(),
                key_pem=(pki_dir / f"{name}.key").read_bytes(),
            )
        # The webhook config is in kubeconfig format, seen from the apiserver.
        write_kubeconfig(
            self.workdir / "token-webhook.kubeconfig",
            server=self.webhook.url,
            ca_pem=self.pki.ca_pem,
            user="kube-apiserver",
        )

    def client_ssl(self, name: str) -> ssl.SSLContext:
        """A TLS context that trusts the CA and presents client ``name``'s cert."""
        pki_dir = self.workdir / "pki"
        context = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
        context.load_cert_chain(pki_dir / f"{name}.crt", pki_dir / f"{name}.key")
        return context

    def mint(
        self, user: str, groups: Sequence[str] = (), *, method: AuthMethod
    ) -> Path:
        """A new kubeconfig for ``user`` in ``groups``, by certificate or token."""
        path = self.new_path(user)
        if method == "cert":
            cert, key = self.pki.issue(user, organizations=groups)
            return self.write(path, user=user, cert_pem=cert, key_pem=key)
        if method == "token":
            return self.write(path, user=user, token=self.webhook.add(user, groups))
        raise ValueError(f"unknown method {method!r}: use 'cert' or 'token'")

    def new_path(self, label: str) -> Path:
        """A fresh path in ``kubeconfigs/``, named after ``label``."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:60]
        return self.workdir / "kubeconfigs" / f"{safe}-{secrets.token_hex(4)}.yaml"

    def write(
        self,
        path: Path,
        *,
        user: str,
        cert_pem: bytes | None = None,
        key_pem: bytes | None = None,
        token: str | None = None,
    ) -> Path:
        """A kubeconfig at ``path`` for this cluster's server and CA."""
        return write_kubeconfig(
            path,
            server=self.server,
            ca_pem=self.pki.ca_pem,
            user=user,
            cert_pem=cert_pem,
            key_pem=key_pem,
            token=token,
        )
