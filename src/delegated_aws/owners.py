"""Whether the DelegatedAWSSecret a Secret is for still exists, asked of the API.

The operator hears about resources and about Secrets on separate watch streams,
so it can learn that a managed Secret was deleted (by the garbage collector,
after the resource went) before it learns that the resource itself is gone.
Before it creates a Secret, the writer asks here, and a Secret for a deleted
resource is not written at all instead of being left to the garbage collector.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import urllib3
from kubernetes.client.exceptions import ApiException

from delegated_aws.models import GROUP, PLURAL, VERSION
from delegated_aws.secret_content import KIND, Owner

logger = logging.getLogger(__name__)


class CustomObjectsReader(Protocol):
    def get_namespaced_custom_object(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        **kwargs: Any,
    ) -> Any: ...


class OwnerLookup:
    """Live reads of one DelegatedAWSSecret, bounded by ``request_timeout``."""

    def __init__(
        self, api: CustomObjectsReader, *, request_timeout: float = 10.0
    ) -> None:
        self._api = api
        self._timeout = request_timeout

    async def present(self, namespace: str, owner: Owner) -> bool:
        """False only when the API says the owner is gone or being deleted.

        When the API cannot be asked, the answer is True: the check only
        narrows a race, and a Secret written for a deleted owner still carries
        its owner reference, so the garbage collector removes it.
        """
        try:
            live = await asyncio.to_thread(
                self._api.get_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                owner.name,
                _request_timeout=self._timeout,
            )
        except ApiException as error:
            if error.status == 404:
                return False
            logger.debug(
                "Could not read %s %s/%s (HTTP %s); assuming it exists.",
                KIND,
                namespace,
                owner.name,
                error.status,
            )
            return True
        except (urllib3.exceptions.HTTPError, OSError) as error:
            logger.debug(
                "Could not read %s %s/%s (%s); assuming it exists.",
                KIND,
                namespace,
                owner.name,
                type(error).__name__,
            )
            return True
        metadata = (live or {}).get("metadata") or {}
        return metadata.get("uid") == owner.uid and not metadata.get(
            "deletionTimestamp"
        )
