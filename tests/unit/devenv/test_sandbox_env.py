"""The sandbox's env file: shell exports that let a person play the customer."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from delegated_aws.devenv.sandbox import _write_env_file


def _env(tmp_path: Path) -> Any:
    plane = SimpleNamespace(kubeconfig=tmp_path / "admin.kubeconfig", bin_dir=tmp_path)
    customer = SimpleNamespace(access_key_id="AKIAEXAMPLE", secret_access_key="it's")
    aws = SimpleNamespace(endpoint_url="http://127.0.0.1:5000", customer=customer)
    return cast(Any, {"plane": plane, "aws": aws})


def test_env_file_is_owner_only_and_sources_in_a_shell(tmp_path: Path) -> None:
    path = tmp_path / "das.env"

    _write_env_file(path, _env(tmp_path))

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    shown = subprocess.run(
        ["bash", "-c", f". {path} && echo $AWS_SECRET_ACCESS_KEY $KUBECONFIG"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout == f"it's {tmp_path / 'admin.kubeconfig'}\n"
