"""The operator as a child process, configured the way a Deployment would be.

Tests and the sandbox run ``python -m delegated_aws run`` exactly as it runs in
a cluster: its AWS identity from the standard SDK variables (pointed at the
emulator), its cluster access from a kubeconfig. It dies with its parent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from delegated_aws.devenv.processes import die_with_parent_hook


class OperatorProcess:
    """``delegated-aws run`` with the given environment; logs to ``log_path``."""

    def __init__(
        self,
        *,
        kubeconfig: Path,
        env: Mapping[str, str],
        log_path: Path,
        args: tuple[str, ...] = (),
    ) -> None:
        self.kubeconfig = kubeconfig
        self.env = dict(env)
        self.log_path = log_path
        self.args = args
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(self.env, KUBECONFIG=str(self.kubeconfig), PYTHONUNBUFFERED="1")
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "delegated_aws", "run", *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=die_with_parent_hook(signal.SIGTERM),
            )
        return self

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, *, grace: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(
            self.log_path.read_text(errors="replace").splitlines()[-lines:]
        )

    def wait_for_log(self, text: str, *, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_path.exists() and text in self.log_path.read_text(
                errors="replace"
            ):
                return
            if not self.alive:
                raise RuntimeError(f"the operator exited:\n{self.log_tail()}")
            time.sleep(0.1)
        raise TimeoutError(f"operator log never said {text!r}:\n{self.log_tail()}")
