"""What the Live API accepts and how it refuses: the simulator's own reading of the documentation.

    operation = resolve("AddLiveSnapshotNotifyConfig", "2016-11-01")
    operation.family.name, operation.verb          # ("notify", Verb.CREATE)
    try:
        values = check(operation, {"DomainName": "live.example.com", "NotifyUrl": "ftp://x"})
    except Reject as refusal:
        ERRORS[refusal.code]                       # (400, "Invalid parameter, please check and try again.")

One row per action family: the actions that create, update, set, read and
delete its per-domain config, and the fields that config holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from ..actions import ACTIONS, InvalidParams

__all__ = [
    "API_VERSION", "COMMON_PARAMS", "ERRORS", "FAMILIES", "OPERATIONS", "SECRET_PARAMS", "Family", "Operation",
    "Reject", "Verb", "check", "resolve",
]

API_VERSION = "2016-11-01"

#: code -> (HTTP status, message), as the service words them
ERRORS: dict[str, tuple[int, str]] = {
    "InvalidAccessKeyId.NotFound": (404, "Specified access key is not found."),
    "IncompleteSignature": (400, "The request signature does not conform to Aliyun standards."),
    "SignatureDoesNotMatch": (400, "Specified signature is not matched with our calculation."),
    "SignatureNonceUsed": (400, "Specified signature nonce was used already."),
    "InvalidTimeStamp.Expired": (400, "Specified time stamp or date value is expired."),
    "InvalidTimeStamp.Format": (400, "Specified time stamp or date value is not well formatted."),
    "InvalidVersion": (400, "Specified parameter Version is not valid."),
    "InvalidAction.NotFound": (404, "Specified api is not found, please check your url and method."),
    "MissingParam": (400, "Parameter is missing, please check and try again."),
    "MalformedParam": (400, "Invalid parameter, please check and try again."),
    "ConfigAlreadyExists": (409, "Configuration already exists, please check and try again."),
    "ConfigNotFound": (400, "Configuration does not exist, please check and try again."),
    "InvalidDomain.NotFound": (404, "The domain provided does not belong to you."),
    "Throttling.User": (400, "Request was denied due to user flow control."),
    "Forbidden.RAM": (403, "User not authorized to operate on the specified resource, or this API doesn't support RAM."),
    "InternalError": (500, "The request processing has failed due to some unknown error, exception or failure."),
    "ServiceUnavailable": (503, "The request has failed due to a temporary failure of the server."),
}

#: common parameters of both signature schemes and of every call, never an action's own
COMMON_PARAMS = frozenset({
    "Action", "Version", "Format", "AccessKeyId", "SignatureMethod", "SignatureVersion", "SignatureNonce",
    "SignatureType", "Timestamp", "Signature", "SecurityToken", "OwnerId",
})


class Reject(Exception):
    """An API error answer; ``detail`` replaces the generic message (never a secret)."""

    def __init__(self, code: str, detail: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


class Verb(Enum):
    """What an action does to its family's config of one domain."""

    CREATE = "create"  # refused when the domain has one
    UPDATE = "update"  # refused when it has none; omitted fields keep their value
    SET = "set"        # creates or replaces
    READ = "read"      # an unconfigured domain reads as empty fields
    DELETE = "delete"  # idempotent


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a family's config, as its writing actions take it."""

    name: str
    #: what a config made without the field holds
    default: str = ""
    secret: bool = False


@dataclass(frozen=True, slots=True)
class Family:
    """Actions that share one per-domain config, and the fields it holds besides DomainName."""

    name: str
    #: what the config is called in answers
    label: str
    actions: tuple[tuple[Verb, str], ...]
    fields: tuple[Field, ...] = ()


@dataclass(frozen=True, slots=True)
class Operation:
    """One action: its family and what it does there."""

    name: str
    family: Family
    verb: Verb
    returns: tuple[str, ...] = field(default=())


FAMILIES: tuple[Family, ...] = (
    Family(
        "notify", "snapshot callback config",
        (
            (Verb.CREATE, "AddLiveSnapshotNotifyConfig"),
            (Verb.UPDATE, "UpdateLiveSnapshotNotifyConfig"),
            (Verb.READ, "DescribeLiveSnapshotNotifyConfig"),
            (Verb.DELETE, "DeleteLiveSnapshotNotifyConfig"),
        ),
        (Field("NotifyUrl"), Field("NotifyReqAuth", default="no"), Field("NotifyAuthKey", secret=True)),
    ),
    Family(
        "callback_auth", "snapshot callback authentication",
        (
            (Verb.SET, "SetSnapshotCallbackAuth"),
            (Verb.READ, "QuerySnapshotCallbackAuth"),
            (Verb.DELETE, "DeleteSnapshotCallbackAuth"),
        ),
        (Field("CallbackReqAuth"), Field("CallbackAuthKey", secret=True)),
    ),
)

OPERATIONS: dict[str, Operation] = {
    name: Operation(name, family, verb,
                    ("DomainName", *(f.name for f in family.fields)) if verb is Verb.READ else ())
    for family in FAMILIES
    for verb, name in family.actions
}

#: parameters whose values are secrets: masked wherever the simulator shows parameters
SECRET_PARAMS: frozenset[str] = frozenset(f.name for family in FAMILIES for f in family.fields if f.secret)


def resolve(action: str, version: str | None) -> Operation:
    """The operation a call names, or Reject (MissingParam, InvalidVersion, InvalidAction.NotFound)."""
    if action == "?":
        raise Reject("MissingParam", "Action is mandatory for this request.")
    if not version:
        raise Reject("MissingParam", "Version is mandatory for this request.")
    if version != API_VERSION:
        raise Reject("InvalidVersion")
    operation = OPERATIONS.get(action)
    if operation is None:
        raise Reject("InvalidAction.NotFound")
    return operation


def check(operation: Operation, params: Mapping[str, str]) -> dict[str, str]:
    """The action's own parameters of a call, as the service takes them, or Reject."""
    # A V3 call carries its common parameters in headers: nothing to take out.
    own = params if COMMON_PARAMS.isdisjoint(params) else {k: v for k, v in params.items() if k not in COMMON_PARAMS}
    try:
        return ACTIONS[operation.name].validate(own)
    except InvalidParams as exc:
        raise Reject(exc.code, str(exc)) from None
