"""Start and stop the AWS emulator from tests and the sandbox.

This module owns the emulator's lifecycle for callers: :class:`AwsEmulator`
runs ``python -m delegated_aws.devenv.awsemu serve`` as a child process (it
dies with its parent via ``PR_SET_PDEATHSIG``) and reads its ready file;
:class:`InProcessAwsEmulator` runs the same server on a thread for fast unit
tests. Both expose the endpoint, the two accounts and an
:class:`~delegated_aws.devenv.awsemu_client.EmulatorClient`.
"""

from __future__ import annotations

import abc
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from delegated_aws.devenv.awsemu_bootstrap import CustomerAccount, OperatorAccount
from delegated_aws.devenv.awsemu_client import EmulatorClient
from delegated_aws.devenv.processes import die_with_parent_hook

if TYPE_CHECKING:
    from delegated_aws.devenv.awsemu import EmulatorServer


class _EmulatorHandle(abc.ABC):
    """Fields shared by both variants, filled from the ready document."""

    endpoint_url: str
    operator: OperatorAccount
    customer: CustomerAccount
    client: EmulatorClient

    def _load(self, info: dict[str, Any]) -> None:
        self.endpoint_url = str(info["endpoint_url"])
        self.operator = OperatorAccount(**info["operator"])
        self.customer = CustomerAccount(**info["customer"])
        self.client = EmulatorClient(self.endpoint_url)

    def sdk_env(
        self,
        account: OperatorAccount | CustomerAccount,
        *,
        region: str = "us-east-1",
    ) -> dict[str, str]:
        """Standard SDK environment variables pointing at the emulator."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": account.access_key_id,
            "AWS_SECRET_ACCESS_KEY": account.secret_access_key,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
        }

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @abc.abstractmethod
    def start(self) -> Self:
        """Start the emulator and fill in the fields above."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop it; safe to call twice."""


class AwsEmulator(_EmulatorHandle):
    """The emulator as a child process on a free loopback port."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout: float = 60.0,
        log_path: Path | None = None,
    ) -> None:
        self._host, self._port = host, port
        self._timeout = startup_timeout
        self._workdir = tempfile.TemporaryDirectory(prefix="awsemu-")
        self.log_path = log_path or Path(self._workdir.name) / "awsemu.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        ready = Path(self._workdir.name) / "ready.json"
        env = {k: v for k, v in os.environ.items() if k != "MOTO_ACCOUNT_ID"}
        command = [
            sys.executable, "-m", "delegated_aws.devenv.awsemu", "serve",
            "--host", self._host, "--port", str(self._port),
            "--ready-file", str(ready),
        ]  # fmt: skip
        with self.log_path.open("wb") as log_file:
            self._process = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=die_with_parent_hook(signal.SIGTERM),
            )
        self._load(self._wait_ready(ready))
        return self

    def _wait_ready(self, ready: Path) -> dict[str, Any]:
        assert self._process is not None
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if ready.exists():
                return dict(json.loads(ready.read_text()))
            if self._process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"AWS emulator did not become ready:\n{tail}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._workdir.cleanup()


class InProcessAwsEmulator(_EmulatorHandle):
    """The emulator on a thread of this process (moto state is global)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host, self._port = host, port
        self.server: EmulatorServer | None = None

    def start(self) -> Self:
        from delegated_aws.devenv.awsemu import EmulatorServer

        self.server = EmulatorServer(host=self._host, port=self._port)
        self.server.start()
        self._load(self.server.info())
        return self

    def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()
