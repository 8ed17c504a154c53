"""The command lines of the local control plane's three components.

This module owns which flags etcd, kube-apiserver and kube-controller-manager
run with, and the loopback ports they listen on; starting, waiting for and
stopping them is :mod:`delegated_aws.devenv.controlplane`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from delegated_aws.devenv.processes import free_port

SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
)


@dataclass
class Ports:
    """Free loopback ports, picked when the instance is made."""

    etcd_client: int = field(default_factory=free_port)
    etcd_peer: int = field(default_factory=free_port)
    apiserver: int = field(default_factory=free_port)
    controller_manager: int = field(default_factory=free_port)


def etcd_argv(bin_dir: Path, workdir: Path, *, ports: Ports) -> list[str]:
    client = f"http://127.0.0.1:{ports.etcd_client}"
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    return [
        str(bin_dir / "etcd"),
        "--name=default",
        f"--data-dir={workdir / 'etcd-data'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        "--initial-cluster-state=new",
        "--unsafe-no-fsync",  # Throw-away data: durability only costs time.
        "--log-level=warn",
    ]


def apiserver_argv(bin_dir: Path, workdir: Path, *, ports: Ports) -> list[str]:
    pki = workdir / "pki"
    return [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",  # Else it looks for a default route.
        f"--secure-port={ports.apiserver}",
        f"--tls-cert-file={pki / 'serving.crt'}",
        f"--tls-private-key-file={pki / 'serving.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        "--authorization-mode=RBAC",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--authentication-token-webhook-config-file="
        f"{workdir / 'token-webhook.kubeconfig'}",
        "--authentication-token-webhook-cache-ttl=30s",
        # The kubernetes Service endpoint may not be a loopback address, so
        # publishing 127.0.0.1 would fail forever: publish nothing.
        "--endpoint-reconciler-type=none",
        "--profiling=false",
    ]


def controller_manager_argv(bin_dir: Path, workdir: Path, *, ports: Ports) -> list[str]:
    pki = workdir / "pki"
    kubeconfig = workdir / "controller-manager.kubeconfig"
    return [
        str(bin_dir / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.controller_manager}",
        f"--tls-cert-file={pki / 'serving.crt'}",
        f"--tls-private-key-file={pki / 'serving.key'}",
        "--leader-elect=false",
        f"--controllers={','.join(CONTROLLERS)}",
        # Each controller acts as its own service account, as kubeadm sets it
        # up: the garbage collector then may read any kind, which it must to
        # confirm that an owner it never saw is really gone.
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        "--profiling=false",
    ]
