"""AWS requests and errors as they travel on the wire, for the emulator.

This module owns reading what a SigV4-signed request says about itself (access
key id, region and service from the credential scope; parameters from the
query string or a form body; the protocol its answer must use) and rendering
AWS's error body in the shape of each protocol: the query protocol's
``ErrorResponse`` XML, the JSON protocol's ``__type``, and S3's ``Error`` XML.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from werkzeug.wrappers import Request, Response

STS_XMLNS: Final = "https://sts.amazonaws.com/doc/2011-06-15/"
_SCOPE = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")


class AwsError(Exception):
    """An error to answer in AWS's wire shape."""

    def __init__(self, status: int, code: str, *, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SignedRequest:
    """What the SigV4 credential scope and the body say about a request."""

    access_key_id: str | None
    region: str | None
    service: str | None
    params: dict[str, str]
    protocol: str

    @property
    def action(self) -> str:
        if "Action" in self.params:
            return self.params["Action"]
        return ""

    @classmethod
    def parse(cls, request: Request, body: bytes) -> SignedRequest:
        scope = _SCOPE.search(request.headers.get("Authorization", ""))
        if scope is None:
            scope = _SCOPE.search(
                "Credential=" + request.args.get("X-Amz-Credential", "")
            )
        key, region, service = (scope[1], scope[3], scope[4]) if scope else (None,) * 3
        return cls(
            key, region, service, _params(request, body), _protocol(request, service)
        )


def _params(request: Request, body: bytes) -> dict[str, str]:
    params = {k: v for k, v in request.args.items()}
    if request.mimetype == "application/x-www-form-urlencoded" and body:
        for key, values in parse_qs(body.decode(), keep_blank_values=True).items():
            params[key] = values[0]
    return params


def _protocol(request: Request, service: str | None) -> str:
    if service == "s3":
        return "s3"
    if "X-Amz-Target" in request.headers or "json" in (request.mimetype or ""):
        return "json"
    return "query"


def error_response(error: AwsError, *, protocol: str) -> Response:
    """AWS's error body for ``protocol`` ("query", "json" or "s3")."""
    request_id = str(uuid.uuid4())
    headers = {"x-amzn-RequestId": request_id, "x-amz-request-id": request_id}
    if protocol == "json":
        body = json.dumps({"__type": error.code, "message": error.message})
        return Response(body, error.status, headers, "application/x-amz-json-1.1")
    code, message = escape(error.code), escape(error.message)
    if protocol == "s3":
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>'
            f"{code}</Code><Message>{message}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        )
    else:
        fault = "Receiver" if error.status >= 500 else "Sender"
        xml = (
            f'<ErrorResponse xmlns="{STS_XMLNS}"><Error><Type>{fault}</Type>'
            f"<Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    return Response(xml, error.status, headers, "text/xml")
