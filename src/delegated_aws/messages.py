"""The catalogue of condition types and reasons.

Every reason the operator can put on a condition is declared here, once, as a
CamelCase constant with the one-sentence meaning a person reads in the
troubleshooting table of the README. Messages are built where the facts are
known (the policy layer and the AWS seam); this module owns only the names.
"""

from __future__ import annotations

from enum import StrEnum


class ConditionType(StrEnum):
    ROLE_VALIDATED = "RoleValidated"
    EXTERNAL_ID_ENFORCED = "ExternalIdEnforced"
    SECRET_SYNCED = "SecretSynced"
    ACCESS_VERIFIED = "AccessVerified"
    READY = "Ready"


class Reason(StrEnum):
    # Progress.
    AWAITING_ROLE_ARN = "AwaitingRoleArn"
    """No ``spec.roleArn`` yet: the customer still has to create the role."""
    ROLE_ASSUMED = "RoleAssumed"
    """AssumeRole with the External ID succeeded."""
    EXTERNAL_ID_ENFORCED = "ExternalIdEnforced"
    """The same call with a wrong External ID was denied, as it must be."""
    SECRET_WRITTEN = "SecretWritten"
    """The Secret holds fresh credentials."""
    READY = "Ready"
    """Credentials are valid and refreshed before they expire."""
    ACCESS_VERIFIED = "AccessVerified"
    """Every listed resource answered with the new credentials."""
    ACCESS_CHECKS_DISABLED = "AccessChecksDisabled"
    """``spec.accessChecks.enabled`` is false."""
    WAITING_FOR_IAM_PROPAGATION = "WaitingForIamPropagation"
    """AssumeRole was denied shortly after a change; IAM may still be propagating."""
    PENDING = "Pending"
    """An earlier step has not completed yet."""

    # A person must act.
    INVALID_SPEC = "InvalidSpec"
    """A spec field is invalid; the message names it."""
    ASSUME_ROLE_DENIED = "AssumeRoleDenied"
    """AWS refused AssumeRole: the trust policy, the External ID or the role."""
    EXTERNAL_ID_NOT_ENFORCED = "ExternalIdNotEnforced"
    """A wrong External ID was accepted: the trust policy lacks the condition."""
    SESSION_DURATION_EXCEEDS_ROLE_MAXIMUM = "SessionDurationExceedsRoleMaximum"
    """The request is above the role's MaxSessionDuration."""
    ROLE_CHAINING_LIMIT = "RoleChainingLimit"
    """The operator's own identity is a role session, so AWS caps sessions at 1 h."""
    PARTITION_MISMATCH = "PartitionMismatch"
    """The role is in another AWS partition than the operator; STS cannot cross."""
    REGION_DISABLED = "RegionDisabled"
    """STS is not activated in the region for the account."""
    OPERATOR_CREDENTIALS_INVALID = "OperatorCredentialsInvalid"
    """The operator's own AWS credentials are invalid, expired or mis-signed."""
    SECRET_NAME_CONFLICT = "SecretNameConflict"
    """A Secret of that name exists and this resource does not own it."""
    SECRET_WRITE_FORBIDDEN = "SecretWriteForbidden"
    """The operator's RBAC does not allow writing Secrets in this namespace."""
    SECRET_REJECTED = "SecretRejected"
    """The API server refused the Secret (e.g. a label value from spec.secret)."""
    EXTERNAL_ID_CONFLICT = "ExternalIdConflict"
    """Another resource already uses this External ID."""
    EXTERNAL_ID_OVERRIDE_FORBIDDEN = "ExternalIdOverrideForbidden"
    """The operator is configured to refuse ``spec.externalId``."""
    ACCESS_CHECK_FAILED = "AccessCheckFailed"
    """A listed resource refused the new credentials."""

    # Transient; retried.
    THROTTLED = "Throttled"
    """AWS throttled the call; it is retried with backoff."""
    AWS_UNAVAILABLE = "AwsUnavailable"
    """AWS answered with a server error or could not be reached."""
    REFRESH_FAILING = "RefreshFailing"
    """A refresh failed; the Secret keeps the current credentials until expiry."""
    SECRET_WRITE_RETRYING = "SecretWriteRetrying"
    """Writing the Secret failed for a passing reason; it is retried."""
    CREDENTIALS_EXPIRED = "CredentialsExpired"
    """Refreshes kept failing and the credentials in the Secret have expired."""
