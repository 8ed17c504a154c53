"""Python client for the AWS emulator's ``/_emulator/`` control API.

This module owns nothing but the HTTP calls a test or the sandbox makes to
read the call log, arm faults and scale session lifetimes; it uses only the
standard library so it works from any process.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

CONTROL_PREFIX = "/_emulator"


class EmulatorClient:
    """Control-plane client: ``EmulatorClient("http://127.0.0.1:PORT")``."""

    def __init__(self, endpoint_url: str, *, timeout: float = 10.0) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        self._timeout = timeout

    def info(self) -> dict[str, Any]:
        """The ready-file document: endpoint and the two accounts."""
        return dict(self._call("GET", "/info"))

    def calls(self, *, action: str | None = None) -> list[dict[str, Any]]:
        """Logged AWS calls, oldest first, optionally of one action."""
        query = f"?action={action}" if action else ""
        return list(self._call("GET", f"/calls{query}")["calls"])

    def reset_calls(self) -> None:
        self._call("POST", "/calls/reset")

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/faults")["faults"])

    def add_fault(
        self,
        action: str,
        preset: str | None = None,
        **fields: Any,
    ) -> str:
        """Arm a rule (see ``FaultRule``); returns its id.

        ``preset`` names an AWS error (``Throttling``, ``ExpiredToken``, ...);
        ``fields`` may set ``status``, ``code``, ``message``, ``role_arn``,
        ``external_id_present``, ``probability``, ``count``, ``latency_ms``,
        ``drop_connection``. ``code=None`` arms latency only.
        """
        payload: dict[str, Any] = {"action": action, **fields}
        if preset is not None:
            payload["preset"] = preset
        return str(self._call("POST", "/faults", payload)["id"])

    def remove_fault(self, fault_id: str) -> None:
        self._call("DELETE", f"/faults/{fault_id}")

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def session_lifetime(self) -> int | None:
        seconds = self._call("GET", "/session-lifetime")["seconds"]
        return None if seconds is None else int(seconds)

    def set_session_lifetime(self, seconds: int | None) -> None:
        """Grant ``seconds`` to every later AssumeRole; None restores AWS."""
        self._call("POST", "/session-lifetime", {"seconds": seconds})

    def _call(
        self, method: str, path: str, payload: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            f"{self.endpoint_url}{CONTROL_PREFIX}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise RuntimeError(
                f"emulator {method} {path}: {exc.code} {detail}"
            ) from exc
        result = json.loads(body) if body else {}
        return dict(result)
