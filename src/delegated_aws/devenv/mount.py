"""A Secret volume on disk, updated the way kubelet updates one.

kubelet writes each new version of a Secret into a fresh timestamped folder and
then swaps the ``..data`` symlink to it in one rename, so a reader sees either
the old files or the new ones, never a mix. Tests and the sandbox use this to
show that SDKs reading the mounted files keep working across rotations.
"""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path


def project(data: Mapping[str, str], target: Path) -> None:
    """Make ``target`` hold ``data`` (base64 values, as the API returns them)."""
    target.mkdir(parents=True, exist_ok=True)
    version = target / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    version.mkdir()
    for key, value in data.items():
        (version / key).write_bytes(base64.b64decode(value))
        (version / key).chmod(0o600)
    staging = target / "..data_tmp"
    staging.unlink(missing_ok=True)
    staging.symlink_to(version.name)
    old = (target / "..data").resolve() if (target / "..data").exists() else None
    os.replace(staging, target / "..data")
    for key in data:
        link = target / key
        if not link.is_symlink():
            link.symlink_to(Path("..data") / key)
    if old is not None and old != version:
        shutil.rmtree(old, ignore_errors=True)
