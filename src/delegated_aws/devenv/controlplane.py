"""A real, throw-away Kubernetes control plane on loopback, for tests and the sandbox.

This module owns running etcd, kube-apiserver and kube-controller-manager (built
by :mod:`delegated_aws.devenv.build`) as child processes in a private temp work
dir: their certificates and keys, their flags, their logs, readiness, and making
sure none of them outlives the Python process that started them. It also hands
out kubeconfigs for arbitrary identities (client certificate or bearer token)
and for service accounts (TokenRequest API).

There are no nodes, kubelet, scheduler or network: only the API machinery that
an operator talks to, plus the garbage collector, namespace and service-account
controllers.

Run ``python -m delegated_aws.devenv.controlplane up`` for a control plane that
lives until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import ctypes
import datetime as dt
import http.client
import http.server
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal, Self

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from delegated_aws.devenv.build import ensure_binaries

SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_USER = "delegated-aws-admin"
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
)
WORKDIR_PREFIX = "delegated-aws-cp-"
_OWNER_FILE = "owner.pid"
_LOG_TAIL_LINES = 30
_PR_SET_PDEATHSIG = 1

AuthMethod = Literal["cert", "token"]


class ControlPlaneError(RuntimeError):
    """The control plane could not be started or used."""


class _PortClash(ControlPlaneError):
    """A component lost the race for a port we picked: worth one more try."""


class KubectlError(subprocess.CalledProcessError):
    """A kubectl call failed; unlike its base class, str() shows kubectl's stderr."""

    def __str__(self) -> str:
        stderr = self.stderr.strip() if isinstance(self.stderr, str) else ""
        return f"{super().__str__()}\n{stderr}"


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
class _Pki:
    """One CA that signs the serving certificate and every client certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls) -> _Pki:
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


class _TokenWebhook:
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


# --------------------------------------------------------------- processes


def _libc_prctl() -> Callable[..., int] | None:
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # Not Linux: no parent-death signal.
        return None
    return prctl


# Resolved once here: the preexec hook runs between fork and exec, where a
# library lookup (and its allocations) is best avoided.
_PRCTL = _libc_prctl()


def _die_with_parent_hook() -> Callable[[], None]:
    """A preexec_fn making the child get SIGKILL when its parent thread exits."""
    parent = os.getpid()

    def hook() -> None:
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # Parent already gone before prctl took hold.
            os._exit(1)

    return hook


@dataclass
class _Component:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def failure(self) -> ControlPlaneError:
        """The error to raise when this component exited during start-up."""
        tail = self.tail()
        kind = _PortClash if "address already in use" in tail else ControlPlaneError
        return kind(
            f"{self.name} exited with {self.process.returncode} during start-up; "
            f"log {self.log}, last lines:\n{tail}"
        )


def _spawn(name: str, argv: list[str], *, workdir: Path) -> _Component:
    log = workdir / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Own process group: signal it as a whole.
            preexec_fn=_die_with_parent_hook(),
        )
    return _Component(name=name, process=process, log=log)


def _terminate(components: Sequence[_Component], *, grace: float) -> None:
    """Stop each process group in turn: SIGTERM, then SIGKILL after ``grace``.

    In turn, because kube-apiserver hangs in its shutdown once etcd is gone.
    """
    for component in components:
        _signal_group(component, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            component.process.wait(timeout=grace)
        if component.process.poll() is None:  # Only while its pid is still ours.
            _signal_group(component, signal.SIGKILL)
            component.process.wait()


def _signal_group(component: _Component, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(component.process.pid, signum)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def remove_stale_workdirs(base: Path | None = None) -> None:
    """Delete work dirs whose owning process is gone (e.g. it was SIGKILLed)."""
    for workdir in Path(base or tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        try:
            owner = int((workdir / _OWNER_FILE).read_text())
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(workdir, ignore_errors=True)
        except (OSError, ValueError):
            continue  # Not ours to judge: being created, or another user's.


# ------------------------------------------------------------- control plane


@dataclass
class _Ports:
    etcd_client: int = field(default_factory=_free_port)
    etcd_peer: int = field(default_factory=_free_port)
    apiserver: int = field(default_factory=_free_port)
    controller_manager: int = field(default_factory=_free_port)


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager on free loopback ports.

    Use as a context manager, or call start() and stop(). Must be started from a
    thread that outlives it (normally the main thread): the children are killed
    when the thread that spawned them exits.
    """

    def __init__(
        self,
        *,
        bin_dir: Path | None = None,
        start_timeout: float = 90.0,
        stop_grace: float = 5.0,
        keep_workdir: bool = False,
    ) -> None:
        self._bin_dir = bin_dir
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self.keep_workdir = keep_workdir
        self._workdir: Path | None = None
        self._ports = _Ports()
        self._pki: _Pki | None = None
        self._webhook: _TokenWebhook | None = None
        self._components: list[_Component] = []
        self._ssl: ssl.SSLContext | None = None

    # -- public API

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = ensure_binaries()
        return self._bin_dir

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise ControlPlaneError("the control plane is not started")
        return self._workdir

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self._ports.apiserver}"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (a client certificate in group system:masters)."""
        return self.workdir / "admin.kubeconfig"

    @property
    def running(self) -> bool:
        return bool(self._components) and all(c.alive() for c in self._components)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start all components and return once the API is ready for use."""
        if self._workdir is not None:
            raise ControlPlaneError("the control plane is already started")
        bin_dir = self.bin_dir  # Build (or fail) before creating anything.
        remove_stale_workdirs()
        atexit.register(self.stop)
        try:
            for attempt in range(3):
                try:
                    self._start_once(bin_dir)
                    return
                except _PortClash:
                    if attempt == 2:
                        raise
                    self.stop()
                    atexit.register(self.stop)
        except ControlPlaneError:
            # Keep the logs for a post-mortem; remove_stale_workdirs() tidies up
            # once this process has exited.
            self._stop(keep_workdir=True)
            raise
        except BaseException:  # Including KeyboardInterrupt: leave nothing behind.
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every component and remove the work dir. Safe to call twice."""
        self._stop(keep_workdir=self.keep_workdir)

    def _stop(self, *, keep_workdir: bool) -> None:
        atexit.unregister(self.stop)
        components, self._components = self._components, []
        _terminate(list(reversed(components)), grace=self.stop_grace)
        if self._webhook is not None:
            self._webhook.stop()
            self._webhook = None
        if self._workdir is not None and not keep_workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._workdir = None

    def restart_controller_manager(self) -> None:
        """Restart kube-controller-manager and wait until it is ready again.

        Its garbage collector then watches CRDs created since, at once instead of
        at its next discovery resync (every 30 s).
        """
        old = [c for c in self._components if c.name == "kube-controller-manager"]
        _terminate(old, grace=self.stop_grace)
        self._components = [c for c in self._components if c not in old]
        self._start_controller_manager(self.bin_dir)
        self._wait_controller_manager(time.monotonic() + self.start_timeout)

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl (as admin unless ``kubeconfig`` is given)."""
        command = [
            str(self.bin_dir / "kubectl"),
            f"--kubeconfig={kubeconfig or self.kubeconfig}",
            # Not ~/.kube/cache: it would collect one entry per random port.
            f"--cache-dir={self.workdir / 'kubectl-cache'}",
            *args,
        ]
        result = subprocess.run(
            command,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, command, result.stdout, result.stderr)
        return result

    def mint_kubeconfig(
        self,
        user: str,
        groups: Sequence[str] = (),
        *,
        method: AuthMethod = "cert",
    ) -> Path:
        """A kubeconfig authenticating as ``user`` in ``groups`` (no RBAC granted)."""
        path = self._new_kubeconfig_path(user)
        if method == "cert":
            cert, key = self._require_pki().issue(user, organizations=groups)
            return self._write(path, user=user, cert_pem=cert, key_pem=key)
        if method == "token":
            if self._webhook is None:
                raise ControlPlaneError("the control plane is not started")
            return self._write(path, user=user, token=self._webhook.add(user, groups))
        raise ValueError(f"unknown method {method!r}: use 'cert' or 'token'")

    def serviceaccount_kubeconfig(
        self, namespace: str, name: str, *, duration: str = "2h"
    ) -> Path:
        """A kubeconfig with a TokenRequest token for the service account.

        Creates the service account if it does not exist yet.
        """
        exists = self.kubectl(
            "get", "serviceaccount", name, "-n", namespace, "-o", "name", check=False
        )
        if exists.returncode != 0:
            self.kubectl("create", "serviceaccount", name, "-n", namespace)
        token = self.kubectl(
            "create", "token", name, "-n", namespace, f"--duration={duration}"
        ).stdout.strip()
        path = self._new_kubeconfig_path(f"sa-{namespace}-{name}")
        user = f"system:serviceaccount:{namespace}:{name}"
        return self._write(path, user=user, token=token)

    # -- start-up

    def _start_once(self, bin_dir: Path) -> None:
        deadline = time.monotonic() + self.start_timeout
        self._ports = _Ports()  # Picked late: the fewer races for them, the better.
        workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
        self._workdir = workdir
        (workdir / _OWNER_FILE).write_text(str(os.getpid()))
        self._write_pki(workdir)
        self._webhook = _TokenWebhook(
            cert_file=workdir / "pki" / "serving.crt",
            key_file=workdir / "pki" / "serving.key",
        )
        self._webhook.start()
        self._write_webhook_config(workdir)
        self._components.append(
            _spawn("etcd", self._etcd_argv(bin_dir), workdir=workdir)
        )
        self._wait("etcd", self._etcd_healthy, deadline)
        self._components.append(
            _spawn("kube-apiserver", self._apiserver_argv(bin_dir), workdir=workdir)
        )
        self._wait("kube-apiserver", self._apiserver_ready, deadline)
        self._start_controller_manager(bin_dir)
        self._wait_controller_manager(deadline)

    def _start_controller_manager(self, bin_dir: Path) -> None:
        self._components.append(
            _spawn(
                "kube-controller-manager",
                self._controller_manager_argv(bin_dir),
                workdir=self.workdir,
            )
        )

    def _wait_controller_manager(self, deadline: float) -> None:
        self._wait("kube-controller-manager", self._controller_manager_ready, deadline)

    def _write_pki(self, workdir: Path) -> None:
        pki_dir = workdir / "pki"
        pki_dir.mkdir(mode=0o700)
        pki = self._pki = _Pki.create()
        files: dict[str, bytes] = {"ca.crt": pki.ca_pem}
        for name, (cert, key) in {
            "serving": pki.issue("127.0.0.1", server=True),
            "admin": pki.issue(ADMIN_USER, organizations=["system:masters"]),
            "controller-manager": pki.issue("system:kube-controller-manager"),
        }.items():
            files[f"{name}.crt"], files[f"{name}.key"] = cert, key
        sa_key = ec.generate_private_key(ec.SECP256R1())
        files["sa.key"] = _pem_key(sa_key)
        files["sa.pub"] = sa_key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        for name, data in files.items():
            (pki_dir / name).write_bytes(data)
        self._ssl = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
        self._ssl.load_cert_chain(pki_dir / "admin.crt", pki_dir / "admin.key")
        self._write(
            workdir / "admin.kubeconfig",
            user=ADMIN_USER,
            cert_pem=files["admin.crt"],
            key_pem=files["admin.key"],
        )
        self._write(
            workdir / "controller-manager.kubeconfig",
            user="system:kube-controller-manager",
            cert_pem=files["controller-manager.crt"],
            key_pem=files["controller-manager.key"],
        )

    def _write_webhook_config(self, workdir: Path) -> None:
        # The webhook config is in kubeconfig format, seen from the apiserver.
        assert self._webhook is not None
        write_kubeconfig(
            workdir / "token-webhook.kubeconfig",
            server=self._webhook.url,
            ca_pem=self._require_pki().ca_pem,
            user="kube-apiserver",
        )

    def _etcd_argv(self, bin_dir: Path) -> list[str]:
        client = f"http://127.0.0.1:{self._ports.etcd_client}"
        peer = f"http://127.0.0.1:{self._ports.etcd_peer}"
        return [
            str(bin_dir / "etcd"),
            "--name=default",
            f"--data-dir={self.workdir / 'etcd-data'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--initial-cluster-state=new",
            "--unsafe-no-fsync",  # Throw-away data: durability only costs time.
            "--log-level=warn",
        ]

    def _apiserver_argv(self, bin_dir: Path) -> list[str]:
        pki = self.workdir / "pki"
        return [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self._ports.etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",  # Else it looks for a default route.
            f"--secure-port={self._ports.apiserver}",
            f"--tls-cert-file={pki / 'serving.crt'}",
            f"--tls-private-key-file={pki / 'serving.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--authentication-token-webhook-config-file="
            f"{self.workdir / 'token-webhook.kubeconfig'}",
            "--authentication-token-webhook-cache-ttl=30s",
            # The kubernetes Service endpoint may not be a loopback address, so
            # publishing 127.0.0.1 would fail forever: publish nothing.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
        ]

    def _controller_manager_argv(self, bin_dir: Path) -> list[str]:
        pki = self.workdir / "pki"
        kubeconfig = self.workdir / "controller-manager.kubeconfig"
        return [
            str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self._ports.controller_manager}",
            f"--tls-cert-file={pki / 'serving.crt'}",
            f"--tls-private-key-file={pki / 'serving.key'}",
            "--leader-elect=false",
            f"--controllers={','.join(CONTROLLERS)}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--profiling=false",
        ]

    # -- readiness

    def _wait(self, name: str, ready: Callable[[], bool], deadline: float) -> None:
        """Poll ``ready`` until true; fail fast with the log if a component died."""
        while True:
            for component in self._components:
                if not component.alive():
                    raise component.failure()
            if ready():
                return
            if time.monotonic() > deadline:
                component = next(c for c in self._components if c.name == name)
                raise ControlPlaneError(
                    f"{name} not ready after {self.start_timeout:.0f}s; "
                    f"log {component.log}, last lines:\n{component.tail()}"
                )
            time.sleep(0.1)

    def _etcd_healthy(self) -> bool:
        status, body = self._get("127.0.0.1", self._ports.etcd_client, "/health")
        return status == 200 and json.loads(body or "{}").get("health") == "true"

    def _apiserver_ready(self) -> bool:
        port = self._ports.apiserver
        # /readyz covers the RBAC bootstrap post-start hook; check its results too.
        return all(
            self._get("127.0.0.1", port, path, tls=True)[0] == 200
            for path in (
                "/readyz",
                "/api/v1/namespaces/default",
                "/apis/rbac.authorization.k8s.io/v1/clusterroles/cluster-admin",
            )
        )

    def _controller_manager_ready(self) -> bool:
        healthy = (
            self._get(
                "127.0.0.1", self._ports.controller_manager, "/healthz", tls=True
            )[0]
            == 200
        )
        # The "default" service account shows the controllers are really running.
        return healthy and (
            self._get(
                "127.0.0.1",
                self._ports.apiserver,
                "/api/v1/namespaces/default/serviceaccounts/default",
                tls=True,
            )[0]
            == 200
        )

    def _get(
        self, host: str, port: int, path: str, *, tls: bool = False
    ) -> tuple[int, str]:
        """GET with the admin identity; (0, "") while nothing is listening yet."""
        connection: http.client.HTTPConnection
        if tls:
            connection = http.client.HTTPSConnection(
                host, port, timeout=5, context=self._ssl
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=5)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read().decode(errors="replace")
        except (OSError, http.client.HTTPException):
            return 0, ""
        finally:
            connection.close()

    # -- helpers

    def _require_pki(self) -> _Pki:
        if self._pki is None:
            raise ControlPlaneError("the control plane is not started")
        return self._pki

    def _new_kubeconfig_path(self, label: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:60]
        return self.workdir / "kubeconfigs" / f"{safe}-{secrets.token_hex(4)}.yaml"

    def _write(
        self,
        path: Path,
        *,
        user: str,
        cert_pem: bytes | None = None,
        key_pem: bytes | None = None,
        token: str | None = None,
    ) -> Path:
        return write_kubeconfig(
            path,
            server=self.server,
            ca_pem=self._require_pki().ca_pem,
            user=user,
            cert_pem=cert_pem,
            key_pem=key_pem,
            token=token,
        )


# ---------------------------------------------------------------------- CLI


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _up(args: argparse.Namespace) -> int:
    # SIGTERM must unwind like Ctrl-C, so that stop() runs and cleans up.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    started = time.monotonic()
    try:
        with ControlPlane(keep_workdir=args.keep) as plane:
            print(f"control plane ready in {time.monotonic() - started:.1f}s")
            print(f"server:     {plane.server}")
            print(f"kubeconfig: {plane.kubeconfig}")
            print(f"logs:       {plane.workdir}/*.log")
            print(f"export KUBECONFIG={plane.kubeconfig}", flush=True)
            while plane.running:
                time.sleep(1)
            print("a component exited; see its log", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 0
    except ControlPlaneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m delegated_aws.devenv.controlplane")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start a control plane until Ctrl-C/SIGTERM")
    up.add_argument("--keep", action="store_true", help="keep the work dir and logs")
    args = parser.parse_args(argv)
    return _up(args)


if __name__ == "__main__":
    sys.exit(main())
