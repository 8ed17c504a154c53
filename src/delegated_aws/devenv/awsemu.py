"""A local AWS for tests and the sandbox: moto, plus what moto gets wrong.

The emulator serves moto's WSGI application (all services, IAM auth always
on) behind a WSGI middleware. Clients reach it only through the standard SDK
settings (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...), so the operator's
code contains nothing emulator-specific. Product code must never import this.

Supplied by this layer, because moto 5.2 does not do it the way AWS does:

* ``sts:AssumeRole`` is decided here, not by moto: moto evaluates a trust
  policy only when the role is in the caller's own account, matches only the
  exact caller ARN (never an account id or ``:root`` principal), lets an
  omitted ExternalId satisfy ``StringEquals`` and ignores the role's
  ``MaxSessionDuration`` and the one-hour role-chaining limit. The layer looks
  the role up in the role's own account, evaluates its trust policy with
  :mod:`delegated_aws.devenv.trust`, checks the caller's identity policy, and
  answers with AWS's codes and messages; credentials are then minted by
  moto's STS backend in the role's account, so moto recognises them later.
* Expiry: a request signed with STS session credentials past their expiration
  gets ``ExpiredToken`` (moto never expires credentials).
* A settable session lifetime (e.g. 20 s instead of the requested hour) so
  tests can watch credentials rotate; the response's ``Expiration`` says so.
* Fault injection, added latency, dropped connections and a call log, driven
  through the JSON control API under ``/_emulator/``.
* Requests without a SigV4 signature are refused (``MissingAuthenticationToken``)
  and moto's own ``/moto-api`` (which could switch auth off) is closed.

Left to moto: signature checks, account resolution from access keys, IAM
identity-policy enforcement for other services (e.g. S3), all service data.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.base_backend import BackendDict
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from delegated_aws.devenv.awsemu_bootstrap import Accounts, bootstrap_accounts
from delegated_aws.devenv.awsemu_client import CONTROL_PREFIX, EmulatorClient
from delegated_aws.devenv.awsemu_faults import (
    CallLog,
    CallRecord,
    FaultRule,
    FaultSet,
    FiredFault,
)
from delegated_aws.devenv.awsemu_harness import AwsEmulator, InProcessAwsEmulator
from delegated_aws.devenv.awsemu_sts import (
    AssumeRoleHandler,
    Identity,
    account_of,
    expired_session,
    find_identity,
)
from delegated_aws.devenv.awsemu_wire import AwsError, SignedRequest, error_response

__all__ = [
    "AwsEmulator",
    "EmulatorApp",
    "EmulatorClient",
    "EmulatorServer",
    "InProcessAwsEmulator",
    "main",
]

WsgiApp = Callable[[dict[str, Any], Any], Iterable[bytes]]
_UNSIGNED_ACTIONS = frozenset({"AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"})
_ERROR_CODE = re.compile(rb"<Code>([^<]+)</Code>|\"__type\"\s*:\s*\"([^\"]+)\"")
log = logging.getLogger(__name__)


class _DropConnection(Exception):
    """Raised to close the client's connection without an answer."""


class EmulatorState:
    """Mutable test-facing state: faults, call log, session lifetime."""

    def __init__(self) -> None:
        self.faults = FaultSet()
        self.calls = CallLog()
        self.session_lifetime: int | None = None


class EmulatorApp:
    """WSGI middleware in front of moto's dispatcher."""

    def __init__(
        self, moto_app: WsgiApp, state: EmulatorState, *, accounts: Accounts
    ) -> None:
        self._moto = moto_app
        self.state = state
        self._accounts = accounts
        self._assume_role = AssumeRoleHandler(
            lifetime_override=lambda: state.session_lifetime
        )

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        environ.pop("HTTP_X_MOTO_ACCOUNT_ID", None)  # no account spoofing
        request = Request(environ)
        if request.path.startswith(CONTROL_PREFIX + "/"):
            response = self._control(request)
        elif request.path.startswith("/moto-api"):
            response = _json({"error": "moto-api is disabled by the emulator"}, 403)
        else:
            try:
                response = self._aws(request, environ)
            except _DropConnection:
                return _drop(environ, start_response)
        return response(environ, start_response)

    # -- AWS traffic -----------------------------------------------------------

    def _aws(self, request: Request, environ: dict[str, Any]) -> Response:
        body = _buffer_form_body(request, environ)
        signed = SignedRequest.parse(request, body)
        record = _new_record(request, signed)
        try:
            response = self._serve(
                request, environ, signed=signed, body=body, record=record
            )
        except AwsError as error:
            response = error_response(error, protocol=signed.protocol)
        record.status = response.status_code
        record.outcome = "ok" if response.status_code < 400 else _error_code(response)
        self.state.calls.append(record)
        return response

    def _serve(
        self,
        request: Request,
        environ: dict[str, Any],
        signed: SignedRequest,
        body: bytes,
        record: CallRecord,
    ) -> Response:
        if signed.access_key_id is None and record.action not in _UNSIGNED_ACTIONS:
            raise AwsError(
                403,
                "MissingAuthenticationToken",
                message="Missing Authentication Token",
            )
        self._inject_fault(signed, record)
        region = signed.region or "us-east-1"
        if signed.access_key_id and expired_session(
            signed.access_key_id, region=region
        ):
            raise _expired(signed.protocol)
        if signed.service == "sts" and signed.action == "AssumeRole":
            return self._assume_role.handle(request, signed, body=body)
        return Response.from_app(self._moto, environ, buffered=True)

    def _inject_fault(self, signed: SignedRequest, record: CallRecord) -> None:
        caller = find_identity(signed.access_key_id or "", region=record.region or "")
        fault = self.state.faults.fire(
            action=record.action,
            role_arn=record.role_arn,
            external_id_present=record.external_id_given,
            account_id=_issuing_account(record.role_arn, caller),
            caller=caller.arn if caller else "",
            region=record.region or "",
        )
        if fault is None:
            return
        record.fault_injected = True
        _apply_fault(fault)

    # -- control API -----------------------------------------------------------

    def _control(self, request: Request) -> Response:
        route = request.path.removeprefix(CONTROL_PREFIX)
        try:
            return self._route(request.method, route, request)
        except (ValueError, KeyError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)

    def _route(self, method: str, route: str, request: Request) -> Response:
        state = self.state
        if (method, route) == ("GET", "/info"):
            return _json(self.info(request.host_url.rstrip("/")))
        if (method, route) == ("GET", "/calls"):
            return _json({"calls": state.calls.list(action=request.args.get("action"))})
        if (method, route) == ("POST", "/calls/reset"):
            state.calls.reset()
            return _json({})
        if (method, route) == ("GET", "/faults"):
            return _json({"faults": state.faults.list()})
        if (method, route) == ("POST", "/faults"):
            rule = state.faults.add(FaultRule.from_json(_body(request)))
            return _json({"id": rule.id})
        if (method, route) == ("DELETE", "/faults"):
            state.faults.clear()
            return _json({})
        if method == "DELETE" and route.startswith("/faults/"):
            found = state.faults.remove(route.removeprefix("/faults/"))
            return _json({}, 200 if found else 404)
        if route == "/session-lifetime" and method in ("GET", "POST"):
            return self._lifetime(request)
        return _json({"error": f"no route {method} {route}"}, 404)

    def _lifetime(self, request: Request) -> Response:
        if request.method == "POST":
            seconds = _body(request).get("seconds")
            if seconds is not None and int(seconds) < 1:
                raise ValueError("seconds must be positive or null")
            self.state.session_lifetime = None if seconds is None else int(seconds)
        return _json({"seconds": self.state.session_lifetime})

    def info(self, endpoint_url: str) -> dict[str, Any]:
        return {"endpoint_url": endpoint_url, **self._accounts.to_json()}


def _new_record(request: Request, signed: SignedRequest) -> CallRecord:
    target = request.headers.get("X-Amz-Target", "")
    action = signed.action or target.rpartition(".")[2] or _rest_action(request)
    identity = None
    if signed.access_key_id:
        identity = find_identity(signed.access_key_id, region=signed.region or "")
    params = signed.params
    return CallRecord(
        action=action,
        service=signed.service,
        region=signed.region,
        caller=identity.arn if identity else None,
        access_key_id=signed.access_key_id,
        role_arn=params.get("RoleArn"),
        external_id_given="ExternalId" in params,
        role_session_name=params.get("RoleSessionName"),
    )


def _rest_action(request: Request) -> str:
    return f"{request.method} {request.path}"


def _buffer_form_body(request: Request, environ: dict[str, Any]) -> bytes:
    """Read a form body (query protocol) and put it back for moto."""
    if request.mimetype != "application/x-www-form-urlencoded":
        return b""
    body = request.get_data(cache=True)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def _issuing_account(role_arn: str | None, caller: Identity | None) -> str:
    """The account asked to issue credentials: the role's for an AssumeRole
    (as RegionDisabledException names it), otherwise the caller's own."""
    account = account_of(role_arn) if role_arn else ""
    return account or (caller.account_id if caller else "")


def _apply_fault(fault: FiredFault) -> None:
    if fault.latency_ms:
        time.sleep(fault.latency_ms / 1000)
    if fault.drop_connection:
        raise _DropConnection()
    if fault.code is not None:
        raise AwsError(fault.status, fault.code, message=fault.message)


def _expired(protocol: str) -> AwsError:
    if protocol == "s3":
        return AwsError(400, "ExpiredToken", message="The provided token has expired.")
    if protocol == "json":
        return AwsError(
            400,
            "ExpiredTokenException",
            message="The security token included in the request is expired",
        )
    return AwsError(
        403,
        "ExpiredToken",
        message="The security token included in the request is expired",
    )


def _drop(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    sock = environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        sock.shutdown(socket.SHUT_RDWR)
    start_response("500 Connection Dropped", [])
    return []


def _error_code(response: Response) -> str:
    match = _ERROR_CODE.search(response.get_data())
    if match is None:
        return f"HTTP{response.status_code}"
    raw = (match.group(1) or match.group(2)).decode()
    return raw.rpartition("#")[2]


def _json(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(payload), status, mimetype="application/json")


def _body(request: Request) -> dict[str, Any]:
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object body")
    return data


class EmulatorServer:
    """Moto + this layer on werkzeug's threaded server, in this process.

    Moto's backends are process-global: ``start()`` resets them, writes the
    two accounts and switches moto's IAM auth on; ``stop()`` restores auth.
    """

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, verbose: bool = False
    ) -> None:
        self._host, self._port = host, port
        self._verbose = verbose
        self.state = EmulatorState()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._saved_auth = (settings.INITIAL_NO_AUTH_ACTION_COUNT, 0)
        self.accounts: Accounts | None = None

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("server not started")
        host = "127.0.0.1" if self._host in ("0.0.0.0", "") else self._host
        return f"http://{host}:{self._server.server_port}"

    def start(self) -> None:
        if os.environ.get("MOTO_ACCOUNT_ID"):
            raise RuntimeError("unset MOTO_ACCOUNT_ID: it overrides every account")
        logging.getLogger("werkzeug").setLevel(
            logging.INFO if self._verbose else logging.WARNING
        )
        BackendDict.reset()
        self.accounts = bootstrap_accounts()
        self._saved_auth = (
            settings.INITIAL_NO_AUTH_ACTION_COUNT,
            ActionAuthenticatorMixin.request_count,
        )
        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # IAM auth on for every request
        ActionAuthenticatorMixin.request_count = 0
        app = EmulatorApp(
            DomainDispatcherApplication(create_backend_app),
            self.state,
            accounts=self.accounts,
        )
        self._server = make_server(self._host, self._port, app, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="aws-emulator", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        settings.INITIAL_NO_AUTH_ACTION_COUNT = self._saved_auth[0]
        ActionAuthenticatorMixin.request_count = self._saved_auth[1]
        self._server = self._thread = None

    def info(self) -> dict[str, Any]:
        if self.accounts is None:
            raise RuntimeError("server not started")
        return {"endpoint_url": self.endpoint_url, **self.accounts.to_json()}


# -- entry point ---------------------------------------------------------------


def _write_ready_file(path: Path, info: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(info, indent=2))
    os.replace(partial, path)


def _serve(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = EmulatorServer(host=args.host, port=args.port, verbose=args.verbose)
    server.start()
    info = server.info()
    if args.ready_file:
        _write_ready_file(Path(args.ready_file), info)
    print(json.dumps({"endpoint_url": info["endpoint_url"]}), flush=True)
    stop.wait()
    server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m delegated_aws.devenv.awsemu")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the emulator until SIGTERM")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--ready-file", help="write endpoint and accounts here")
    serve.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    return _serve(args)


if __name__ == "__main__":
    sys.exit(main())
