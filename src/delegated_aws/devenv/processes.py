"""Child processes of the local development environment, and what they leave.

This module owns the lifecycle of the programs the devenv runs: spawning them
so that they die with the Python process that started them (``prctl``'s
``PR_SET_PDEATHSIG``), stopping their process groups (SIGTERM, then SIGKILL),
picking free loopback ports for them and probing those ports for readiness,
reading the tails of their logs, and claiming work dirs, then removing those
whose owning process is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

WORKDIR_PREFIX = "delegated-aws-cp-"
_OWNER_FILE = "owner.pid"
_LOG_TAIL_LINES = 30
_PR_SET_PDEATHSIG = 1


def _libc_prctl() -> Callable[..., int] | None:
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # Not Linux: no parent-death signal.
        return None
    return prctl


# Resolved once here: the preexec hook runs between fork and exec, where a
# library lookup (and its allocations) is best avoided.
_PRCTL = _libc_prctl()


def die_with_parent_hook(signum: int = signal.SIGKILL) -> Callable[[], None]:
    """A preexec_fn making the child get ``signum`` when its parent thread exits.

    Make it in the process that spawns the child: it remembers that pid, and
    the child exits at once if its parent was gone before ``prctl`` took hold.
    """
    parent = os.getpid()

    def hook() -> None:
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:  # Parent already gone before prctl took hold.
            os._exit(1)

    return hook


@dataclass
class Component:
    """A spawned program, the leader of its own process group, and its log."""

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


def spawn(name: str, argv: list[str], *, workdir: Path) -> Component:
    """Start ``argv`` in ``workdir``, logging to ``<workdir>/<name>.log``."""
    log = workdir / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Own process group: signal it as a whole.
            preexec_fn=die_with_parent_hook(),
        )
    return Component(name=name, process=process, log=log)


def terminate(components: Sequence[Component], *, grace: float) -> None:
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


def _signal_group(component: Component, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(component.process.pid, signum)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def probe(
    port: int, path: str, *, context: ssl.SSLContext | None = None
) -> tuple[int, str]:
    """GET ``path`` on a loopback port, over TLS if given a ``context``.

    (status, body), or (0, "") while nothing is listening yet.
    """
    connection: http.client.HTTPConnection
    if context is not None:
        connection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=5, context=context
        )
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    except (OSError, http.client.HTTPException):
        return 0, ""
    finally:
        connection.close()


def new_workdir() -> Path:
    """A fresh temp work dir, marked as owned by this process."""
    workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
    (workdir / _OWNER_FILE).write_text(str(os.getpid()))
    return workdir


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
