"""A real, throw-away Kubernetes control plane on loopback, for tests and the sandbox.

This module owns running etcd, kube-apiserver and kube-controller-manager (built
by :mod:`delegated_aws.devenv.build`, with the flags of
:mod:`delegated_aws.devenv.flags`) in a private temp work dir: the order they
start in, their readiness, start-up retries when a port race is
lost, and handing out kubeconfigs for arbitrary identities (client certificate
or bearer token) and for service accounts (TokenRequest API). Certificates,
kubeconfig files and the token webhook live in :mod:`delegated_aws.devenv.pki`;
spawning, stopping and outliving no one in :mod:`delegated_aws.devenv.processes`.

There are no nodes, kubelet, scheduler or network: only the API machinery that
an operator talks to, plus the garbage collector, namespace and service-account
controllers.

Run ``python -m delegated_aws.devenv.controlplane up`` for a control plane that
lives until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import atexit
import json
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Self

from delegated_aws.devenv.build import ensure_binaries
from delegated_aws.devenv.flags import (
    CONTROLLERS,
    SERVICE_ACCOUNT_ISSUER,
    SERVICE_CLUSTER_IP_RANGE,
    Ports,
    apiserver_argv,
    controller_manager_argv,
    etcd_argv,
)
from delegated_aws.devenv.pki import (
    KUBERNETES_SERVICE_IP,
    AuthMethod,
    ClusterCredentials,
    write_kubeconfig,
)
from delegated_aws.devenv.processes import (
    WORKDIR_PREFIX,
    Component,
    new_workdir,
    probe,
    remove_stale_workdirs,
    spawn,
    terminate,
)

__all__ = [
    "ADMIN_USER",
    "CONTROLLERS",
    "CONTROLLER_MANAGER_USER",
    "KUBERNETES_SERVICE_IP",
    "SERVICE_ACCOUNT_ISSUER",
    "SERVICE_CLUSTER_IP_RANGE",
    "WORKDIR_PREFIX",
    "AuthMethod",
    "ControlPlane",
    "ControlPlaneError",
    "KubectlError",
    "main",
    "remove_stale_workdirs",
    "write_kubeconfig",
]

ADMIN_USER = "delegated-aws-admin"
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
# The client certificates every control plane starts with, by file name.
_CLIENTS: dict[str, tuple[str, list[str]]] = {
    "admin": (ADMIN_USER, ["system:masters"]),
    "controller-manager": (CONTROLLER_MANAGER_USER, []),
}


class ControlPlaneError(RuntimeError):
    """The control plane could not be started or used."""


class _PortClash(ControlPlaneError):
    """A component lost the race for a port we picked: worth one more try."""


class KubectlError(subprocess.CalledProcessError):
    """A kubectl call failed; unlike its base class, str() shows kubectl's stderr."""

    def __str__(self) -> str:
        stderr = self.stderr.strip() if isinstance(self.stderr, str) else ""
        return f"{super().__str__()}\n{stderr}"


def _startup_failure(component: Component) -> ControlPlaneError:
    """The error to raise when ``component`` exited during start-up."""
    tail = component.tail()
    kind = _PortClash if "address already in use" in tail else ControlPlaneError
    return kind(
        f"{component.name} exited with {component.process.returncode} during "
        f"start-up; log {component.log}, last lines:\n{tail}"
    )


# ------------------------------------------------------------- control plane


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
        self._ports = Ports()
        self._credentials: ClusterCredentials | None = None
        self._components: list[Component] = []
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
        terminate(list(reversed(components)), grace=self.stop_grace)
        if self._credentials is not None:
            self._credentials.webhook.stop()
            self._credentials = None
        if self._workdir is not None and not keep_workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._workdir = None

    def restart_controller_manager(self) -> None:
        """Restart kube-controller-manager and wait until it is ready again.

        Its garbage collector then watches CRDs created since, at once instead of
        at its next discovery resync (every 30 s).
        """
        old = [c for c in self._components if c.name == "kube-controller-manager"]
        terminate(old, grace=self.stop_grace)
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
        return self._require_credentials().mint(user, groups, method=method)

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
        credentials = self._require_credentials()
        path = credentials.new_path(f"sa-{namespace}-{name}")
        user = f"system:serviceaccount:{namespace}:{name}"
        return credentials.write(path, user=user, token=token)

    # -- start-up

    def _start_once(self, bin_dir: Path) -> None:
        deadline = time.monotonic() + self.start_timeout
        self._ports = Ports()  # Picked late: the fewer races for them, the better.
        workdir = self._workdir = new_workdir()
        credentials = self._credentials = ClusterCredentials.create(
            workdir, server=self.server, clients=_CLIENTS
        )
        self._ssl = credentials.client_ssl("admin")
        credentials.webhook.start()
        self._components.append(
            spawn(
                "etcd", etcd_argv(bin_dir, workdir, ports=self._ports), workdir=workdir
            )
        )
        self._wait("etcd", self._etcd_healthy, deadline)
        self._components.append(
            spawn(
                "kube-apiserver",
                apiserver_argv(bin_dir, workdir, ports=self._ports),
                workdir=workdir,
            )
        )
        self._wait("kube-apiserver", self._apiserver_ready, deadline)
        self._start_controller_manager(bin_dir)
        self._wait_controller_manager(deadline)

    def _start_controller_manager(self, bin_dir: Path) -> None:
        self._components.append(
            spawn(
                "kube-controller-manager",
                controller_manager_argv(bin_dir, self.workdir, ports=self._ports),
                workdir=self.workdir,
            )
        )

    def _wait_controller_manager(self, deadline: float) -> None:
        self._wait("kube-controller-manager", self._controller_manager_ready, deadline)

    # -- readiness

    def _wait(self, name: str, ready: Callable[[], bool], deadline: float) -> None:
        """Poll ``ready`` until true; fail fast with the log if a component died."""
        while True:
            for component in self._components:
                if not component.alive():
                    raise _startup_failure(component)
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
        status, body = probe(self._ports.etcd_client, "/health")
        return status == 200 and json.loads(body or "{}").get("health") == "true"

    def _apiserver_ready(self) -> bool:
        # /readyz covers the RBAC bootstrap post-start hook; check its results too.
        return all(
            self._admin_get_ok(self._ports.apiserver, path)
            for path in (
                "/readyz",
                "/api/v1/namespaces/default",
                "/apis/rbac.authorization.k8s.io/v1/clusterroles/cluster-admin",
            )
        )

    def _controller_manager_ready(self) -> bool:
        healthy = self._admin_get_ok(self._ports.controller_manager, "/healthz")
        # The "default" service account shows the controllers are really running.
        return healthy and self._admin_get_ok(
            self._ports.apiserver, "/api/v1/namespaces/default/serviceaccounts/default"
        )

    def _admin_get_ok(self, port: int, path: str) -> bool:
        """Whether a GET over TLS, as admin, answers 200."""
        return probe(port, path, context=self._ssl)[0] == 200

    # -- helpers

    def _require_credentials(self) -> ClusterCredentials:
        if self._credentials is None:
            raise ControlPlaneError("the control plane is not started")
        return self._credentials


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
