"""OwnerLookup: a live read says whether a Secret's resource still exists."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from delegated_aws.owners import OwnerLookup
from delegated_aws.secret_content import Owner

OWNER = Owner(name="reader", uid="uid-reader")


class FakeCustomObjects:
    def __init__(self, answer: dict[str, Any] | BaseException) -> None:
        self.answer = answer
        self.calls: list[tuple[Any, ...]] = []
        self.kwargs: list[dict[str, Any]] = []

    def get_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(args)
        self.kwargs.append(kwargs)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def present(answer: dict[str, Any] | BaseException) -> bool:
    return asyncio.run(OwnerLookup(FakeCustomObjects(answer)).present("ns", OWNER))


def test_reads_the_named_resource_with_a_timeout() -> None:
    api = FakeCustomObjects({"metadata": {"uid": OWNER.uid}})

    assert asyncio.run(OwnerLookup(api, request_timeout=3).present("ns", OWNER))

    assert api.calls == [
        ("delegatedaws.io", "v1alpha1", "ns", "delegatedawssecrets", "reader")
    ]
    assert api.kwargs == [{"_request_timeout": 3}]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param({"metadata": {"uid": OWNER.uid}}, True, id="same-object"),
        pytest.param(ApiException(status=404, reason="Not Found"), False, id="gone"),
        pytest.param(
            {"metadata": {"uid": "uid-of-a-successor"}}, False, id="name-reused"
        ),
        pytest.param(
            {
                "metadata": {
                    "uid": OWNER.uid,
                    "deletionTimestamp": "2026-12-03T10:00:00Z",
                }
            },
            False,
            id="being-deleted",
        ),
        # Unknown is not gone: the garbage collector remains the safety net.
        pytest.param(ApiException(status=403, reason="Forbidden"), True, id="403"),
        pytest.param(ApiException(status=503, reason="Unavailable"), True, id="503"),
        pytest.param(
            urllib3.exceptions.ReadTimeoutError(None, "", ""), True, id="timeout"
        ),  # type: ignore[arg-type]
        pytest.param(ConnectionRefusedError(), True, id="refused"),
    ],
)
def test_only_a_definite_answer_says_gone(
    answer: dict[str, Any] | BaseException, expected: bool
) -> None:
    assert present(answer) is expected
