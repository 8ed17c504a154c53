"""A Secret volume on disk, updated the way kubelet updates one.

kubelet writes each new version of a Secret into a fresh timestamped folder and
then swaps the ``..data`` symlink to it in one rename, so a reader sees either
the old files or the new ones, never a mix. Each key is a symlink through
``..data``. Tests and the sandbox use this to show that SDKs reading the
mounted files keep working across rotations. A ``subPath`` mount would bind
one file of one version instead, which is why it never sees an update.
"""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

DATA_LINK = "..data"


def project(data: Mapping[str, str], target: Path) -> None:
    """Make ``target`` hold ``data`` (base64 values, as the API returns them)."""
    target.mkdir(parents=True, exist_ok=True)
    old = _current_version(target)
    version = _write_version(data, target)

    # The one atomic step: readers switch from the old folder to the new one.
    staging = target / "..data_tmp"
    staging.unlink(missing_ok=True)
    staging.symlink_to(version.name)
    os.replace(staging, target / DATA_LINK)

    _link_keys(set(data), target)
    if old is not None and old != version:
        shutil.rmtree(old, ignore_errors=True)


def _current_version(target: Path) -> Path | None:
    link = target / DATA_LINK
    return link.resolve() if link.exists() else None


def _write_version(data: Mapping[str, str], target: Path) -> Path:
    stamp = time.strftime("%Y_%m_%d_%H_%M_%S")
    version = target / f"..{stamp}.{time.monotonic_ns()}"
    version.mkdir()
    for key, value in data.items():
        (version / key).write_bytes(base64.b64decode(value))
        (version / key).chmod(0o600)
    return version.resolve()


def _link_keys(keys: set[str], target: Path) -> None:
    """One symlink per key through ``..data``; keys gone from the Secret go."""
    for entry in target.iterdir():
        stale = entry.name not in keys and not entry.name.startswith("..")
        if stale and entry.is_symlink():
            entry.unlink()
    for key in keys:
        link = target / key
        if not link.is_symlink():
            link.symlink_to(Path(DATA_LINK) / key)
