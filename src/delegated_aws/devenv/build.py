"""Building and caching the control-plane binaries from the pinned Go modules.

This module owns turning ``controlplane/kubernetes`` and ``controlplane/etcd``
(a go.mod and go.sum each) into a directory holding ``etcd``, ``kube-apiserver``,
``kube-controller-manager`` and ``kubectl``. The binaries live in a per-machine
cache outside the repository, keyed by the pinned versions and a hash of the
module files, so they are built once and shared by every checkout and test run.

Run ``python -m delegated_aws.devenv.build`` to build (if needed) and print the
bin directory.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_MODULE = "k8s.io/kubernetes"
ETCD_MODULE = "go.etcd.io/etcd/server/v3"

# Packages built from controlplane/kubernetes, in build order.
KUBERNETES_COMMANDS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kubectl",
)
BINARIES = ("etcd", *KUBERNETES_COMMANDS)

GO_FALLBACKS = (Path("/usr/local/go/bin/go"),)
HEARTBEAT_SECONDS = 15.0
_LOG_TAIL_LINES = 40

GO_INSTALL_HINT = (
    "Install Go 1.26 or newer from https://go.dev/dl/ (or your package manager) "
    "and make sure `go` is on PATH, or set DELEGATED_AWS_GO to the go binary."
)


class BuildError(RuntimeError):
    """The control-plane binaries could not be built."""


@dataclass(frozen=True)
class ModuleSpec:
    """The two pinned Go modules and the cache key derived from them."""

    kubernetes_dir: Path
    etcd_dir: Path
    kubernetes_version: str
    etcd_version: str
    digest: str

    @property
    def cache_key(self) -> str:
        return f"k8s-{self.kubernetes_version}-etcd-{self.etcd_version}-{self.digest}"


def required_version(go_mod: str, module: str) -> str:
    """Return the version ``go_mod`` requires for ``module``.

    Handles both ``require mod v1`` and the parenthesised block form.
    """
    pattern = re.compile(
        rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", re.MULTILINE
    )
    match = pattern.search(go_mod)
    if match is None:
        raise BuildError(f"go.mod does not require {module}")
    return match.group(1)


def modules_digest(files: list[Path]) -> str:
    """Short sha256 over the module files, so any pin change gets a new cache."""
    digest = hashlib.sha256()
    for path in files:
        # Name and length framing so moving bytes between files changes the key.
        data = path.read_bytes()
        digest.update(f"{path.parent.name}/{path.name}:{len(data)}\n".encode())
        digest.update(data)
    return digest.hexdigest()[:12]


def source_root() -> Path:
    """The checkout holding ``controlplane/``: $DELEGATED_AWS_SOURCE or a parent."""
    override = os.environ.get("DELEGATED_AWS_SOURCE")
    if override:
        root = Path(override).expanduser().resolve()
        if not (root / "controlplane").is_dir():
            raise BuildError(f"DELEGATED_AWS_SOURCE={root} has no controlplane/")
        return root
    for parent in Path(__file__).resolve().parents:
        if (parent / "controlplane" / "kubernetes" / "go.mod").is_file():
            return parent
    raise BuildError(
        "cannot find the controlplane/ folder above "
        f"{Path(__file__).resolve()}; set DELEGATED_AWS_SOURCE to the checkout"
    )


def load_spec(root: Path | None = None) -> ModuleSpec:
    """Read the pinned versions and hash the module files under ``root``."""
    base = (root or source_root()) / "controlplane"
    k8s_dir, etcd_dir = base / "kubernetes", base / "etcd"
    files = [d / name for d in (k8s_dir, etcd_dir) for name in ("go.mod", "go.sum")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise BuildError(f"missing module files: {', '.join(missing)}")
    return ModuleSpec(
        kubernetes_dir=k8s_dir,
        etcd_dir=etcd_dir,
        kubernetes_version=required_version(
            (k8s_dir / "go.mod").read_text(), KUBERNETES_MODULE
        ),
        etcd_version=required_version((etcd_dir / "go.mod").read_text(), ETCD_MODULE),
        digest=modules_digest(files),
    )


def cache_root() -> Path:
    base = os.environ.get("DELEGATED_AWS_CACHE") or "~/.cache/delegated-aws"
    return Path(base).expanduser() / "controlplane"


def kubernetes_ldflags(version: str, *, build_date: str) -> str:
    """Linker flags stamping the version that ``kubectl version`` etc. report."""
    match = re.match(r"v(\d+)\.(\d+)", version)
    if match is None:
        raise BuildError(f"unexpected Kubernetes version {version!r}")
    values = {
        "gitVersion": version,
        "gitMajor": match.group(1),
        "gitMinor": match.group(2),
        "gitTreeState": "clean",
        "buildDate": build_date,
    }
    flags = ["-s", "-w"]  # No DWARF: a third smaller, links faster.
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{name}={value}" for name, value in values.items()]
    return " ".join(flags)


def find_go() -> str:
    go = os.environ.get("DELEGATED_AWS_GO") or shutil.which("go")
    # The official tarball's location, often missing from PATH of IDEs and CI.
    fallbacks = [str(p) for p in GO_FALLBACKS if p.is_file()]
    go = go or next(iter(fallbacks), None)
    if go is None:
        raise BuildError(f"`go` was not found. {GO_INSTALL_HINT}")
    return go


def _progress(message: str) -> None:
    print(f"[delegated-aws build] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _heartbeat(label: str, *, interval: float = HEARTBEAT_SECONDS) -> Iterator[None]:
    """Print a still-building line every ``interval`` s: cold builds take minutes."""
    started = time.monotonic()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(interval):
            _progress(f"  ... still building {label} ({_since(started)})")

    thread = threading.Thread(target=beat, name="build-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _since(started: float) -> str:
    return f"{time.monotonic() - started:.0f}s"


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def go_build(
    go: str, module_dir: Path, package: str, *, output: Path, ldflags: str = ""
) -> None:
    """Run one ``go build``; raise BuildError with the output tail on failure."""
    command = [go, "build", "-o", str(output)]
    if ldflags:
        command += ["-ldflags", ldflags]
    command.append(package)
    started = time.monotonic()
    _progress(f"building {output.name} ({package})")
    with _heartbeat(output.name):
        try:
            result = subprocess.run(
                command,
                cwd=module_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                check=False,
            )
        except OSError as error:
            raise BuildError(f"cannot run {go}: {error}. {GO_INSTALL_HINT}") from error
    if result.returncode != 0:
        raise BuildError(
            f"`{' '.join(command)}` failed in {module_dir} "
            f"(exit {result.returncode}); run it there to see all output. "
            f"Last lines:\n{_tail(result.stdout)}"
        )
    _progress(f"built {output.name} in {_since(started)}")


def build_into(spec: ModuleSpec, bin_dir: Path, *, go: str) -> None:
    """Build all four binaries into ``bin_dir`` (which must exist)."""
    go_build(go, spec.etcd_dir, ETCD_MODULE, output=bin_dir / "etcd")
    build_date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ldflags = kubernetes_ldflags(spec.kubernetes_version, build_date=build_date)
    for command in KUBERNETES_COMMANDS:
        go_build(
            go,
            spec.kubernetes_dir,
            f"{KUBERNETES_MODULE}/cmd/{command}",
            output=bin_dir / command,
            ldflags=ldflags,
        )


def _complete(bin_dir: Path) -> bool:
    return all((bin_dir / name).is_file() for name in BINARIES)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive fcntl lock: concurrent test runs wait instead of rebuilding."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _progress(f"waiting for another build holding {path}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_binaries() -> Path:
    """Return a bin dir with etcd, kube-apiserver, kube-controller-manager, kubectl.

    Builds them on first use on this machine (minutes when the Go build cache is
    cold), afterwards returns immediately.
    """
    spec = load_spec()
    entry = cache_root() / spec.cache_key
    bin_dir = entry / "bin"
    if _complete(bin_dir):
        return bin_dir
    with _locked(cache_root() / f"{spec.cache_key}.lock"):
        if _complete(bin_dir):  # Built by whoever held the lock before us.
            return bin_dir
        go = find_go()
        started = time.monotonic()
        _progress(f"building the control plane into {entry} (once per machine)")
        # Build next to the target, then rename: readers never see half a dir.
        staging = Path(tempfile.mkdtemp(prefix=f".{spec.cache_key}.", dir=entry.parent))
        try:
            (staging / "bin").mkdir()
            build_into(spec, staging / "bin", go=go)
            if entry.exists():
                shutil.rmtree(entry)  # An incomplete leftover from an old layout.
            staging.rename(entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        _progress(f"control plane binaries ready in {_since(started)}")
    return bin_dir


def main() -> int:
    try:
        print(ensure_binaries())
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
