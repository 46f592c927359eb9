"""What the Live API accepts and how it refuses: the simulator's own reading of the documentation.

    operation = resolve("AddLiveSnapshotNotifyConfig", "2016-11-01")
    operation.family.name, operation.verb          # ("notify", Verb.CREATE)
    try:
        values = check(operation, {"DomainName": "live.example.com", "NotifyUrl": "ftp://x"})
    except Reject as refusal:
        refusal.code, ERRORS[refusal.code][0]      # ("MalformedParam", 400)

The simulator is a second opinion, not a mirror: these rules are written
from the API reference (the operations' pages and the project's notes on
them), and nothing here is imported from bulk's own validation. A rule bulk
loosens or gets wrong is still refused here with the code and HTTP status
the documentation gives, so a rehearsal against the simulator catches it.

One row per action family (``FAMILIES``): the actions that create, update,
set, read and delete its per-domain config, and the fields that config
holds with their documented rules: a length, a URL scheme, a key alphabet,
a yes/no switch, which call must carry a field, and when. A new family is
one row here; ``state`` keeps its configs without knowing its actions.

Documented, per parameter: NotifyUrl a valid URL of at most 500 characters
(HTTP or HTTPS: the callbacks are HTTP(S) requests); NotifyReqAuth and
CallbackReqAuth ``yes`` or ``no`` (NotifyReqAuth defaults to ``no``); auth
keys 16 to 32 letters and digits; NotifyAuthKey required when NotifyReqAuth
is ``yes``; Add's NotifyUrl required, Update's optional (an omitted field
keeps its value); every SetSnapshotCallbackAuth parameter required. Errors:
400 MissingParam, 400 MalformedParam, 409 ConfigAlreadyExists, 500
InternalError, with the message each page words (``%s, please check and
try again later.``). Not documented, and this simulator's own choice:
DomainName must be a DNS name in ASCII (a wildcard ``*.`` allowed, compared
without case or a final dot); an empty value counts as absent; a parameter
the action does not take is MalformedParam; Update of a domain with no
config is 400 ConfigNotFound.

The account's domain list (``DescribeLiveUserDomains``, ``LISTING``) is no
family: it reads the domains the account holds, with its own quota (100
calls per second per account, ``Operation.quota``). Documented: PageSize 1
to 50 (default 20), PageNumber 1 to 100000 (default 1), LiveDomainType
``liveVideo`` or ``liveEdge``, DomainStatus ``online``, ``offline`` or
``configuring``, DomainName a filter matched as DomainSearchType says
(``fuzzy_match`` by default, ``pre_match``, ``suf_match``, ``full_match``),
RegionName, ResourceGroupId; the answer carries PageNumber, PageSize,
TotalCount and ``Domains.PageData``. This simulator's own choice: a value
outside those is MalformedParam, and ``Tag.N.*`` filters are not taken (it
keeps no tags).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

__all__ = [
    "API_VERSION", "COMMON_PARAMS", "DOMAIN_FIELDS", "ERRORS", "FAMILIES", "LISTING", "OPERATIONS", "SECRET_PARAMS",
    "Family", "Field", "Listing", "Operation", "Reject", "Rule", "Verb", "check", "check_listing", "resolve",
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
    "Throttling": (503, "Request was denied due to request throttling."),
    "Forbidden.RAM": (
        403, "User not authorized to operate on the specified resource, or this API doesn't support RAM.",
    ),
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
    LIST = "list"      # the account's domains, a page at a time (no family)


class Rule(Enum):
    """The documented shape of a value."""

    DOMAIN = "domain"
    URL = "url"
    SWITCH = "yes/no"
    AUTH_KEY = "auth key"


_URL_MAX = 500
_AUTH_KEY = re.compile(r"[A-Za-z0-9]{16,32}")
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_DOMAIN = re.compile(rf"(?=.{{1,253}}$)(?:\*\.)?{_LABEL}(?:\.{_LABEL})+")


def _domain(value: str) -> str | None:
    return None if _DOMAIN.fullmatch(value.removesuffix(".")) else "is not a valid domain name"


def _url(value: str) -> str | None:
    if len(value) > _URL_MAX:
        return f"is longer than {_URL_MAX} characters"
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        host = None
    if not host or parts.scheme not in ("http", "https") or not value.isprintable() or " " in value:
        return "is not a valid HTTP or HTTPS URL"
    return None


def _switch(value: str) -> str | None:
    return None if value in ("yes", "no") else "must be yes or no"


def _auth_key(value: str) -> str | None:
    return None if _AUTH_KEY.fullmatch(value) else "must be 16 to 32 characters, letters and digits only"


#: why a value breaks its rule (never the value: some are secrets), or None
_PROBLEM: dict[Rule, Callable[[str], str | None]] = {
    Rule.DOMAIN: _domain, Rule.URL: _url, Rule.SWITCH: _switch, Rule.AUTH_KEY: _auth_key,
}


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a family's config, with its documented rule."""

    name: str
    rule: Rule
    #: the actions (by what they do) whose calls must carry it
    required: tuple[Verb, ...] = ()
    #: (switch, value): also required when the same call sets that switch to that value
    required_when: tuple[str, str] | None = None
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
    fields: tuple[Field, ...]
    #: the refusal message as the family's pages word it; {} is what was wrong
    message: str = "{}, please check and try again later."

    def refuse(self, code: str, detail: str) -> Reject:
        """A refusal of ``code`` worded as this family's pages word it."""
        return Reject(code, self.message.format(detail))


@dataclass(frozen=True, slots=True)
class Operation:
    """One action: its family, what it does there, the parameters it takes and the fields it returns."""

    name: str
    family: Family | None
    verb: Verb
    takes: tuple[Field, ...] = ()
    returns: tuple[str, ...] = ()
    #: its own quota in calls per second per account (None: the simulator's ``qps``)
    quota: float | None = None


_DOMAIN_NAME = Field("DomainName", Rule.DOMAIN, required=tuple(Verb))

FAMILIES: tuple[Family, ...] = (
    Family(
        "notify", "snapshot callback config",
        (
            (Verb.CREATE, "AddLiveSnapshotNotifyConfig"),
            (Verb.UPDATE, "UpdateLiveSnapshotNotifyConfig"),
            (Verb.READ, "DescribeLiveSnapshotNotifyConfig"),
            (Verb.DELETE, "DeleteLiveSnapshotNotifyConfig"),
        ),
        (
            Field("NotifyUrl", Rule.URL, required=(Verb.CREATE,)),
            Field("NotifyReqAuth", Rule.SWITCH, default="no"),
            Field("NotifyAuthKey", Rule.AUTH_KEY, required_when=("NotifyReqAuth", "yes"), secret=True),
        ),
    ),
    Family(
        "callback_auth", "snapshot callback authentication",
        (
            (Verb.SET, "SetSnapshotCallbackAuth"),
            (Verb.READ, "QuerySnapshotCallbackAuth"),
            (Verb.DELETE, "DeleteSnapshotCallbackAuth"),
        ),
        (
            Field("CallbackReqAuth", Rule.SWITCH, required=(Verb.SET,)),
            Field("CallbackAuthKey", Rule.AUTH_KEY, required=(Verb.SET,), secret=True),
        ),
        message="{}",
    ),
)

OPERATIONS: dict[str, Operation] = {
    name: Operation(
        name, family, verb,
        takes=(_DOMAIN_NAME, *family.fields) if verb in (Verb.CREATE, Verb.UPDATE, Verb.SET) else (_DOMAIN_NAME,),
        returns=("DomainName", *(f.name for f in family.fields)) if verb is Verb.READ else (),
    )
    for family in FAMILIES
    for verb, name in family.actions
}

#: DescribeLiveUserDomains: the account's domains, paged (no family: it reads the domain list itself)
LISTING = Operation("DescribeLiveUserDomains", None, Verb.LIST, quota=100.0)
OPERATIONS[LISTING.name] = LISTING

#: what a domain of the list holds, in the answer's order (``Domains.PageData``)
DOMAIN_FIELDS = ("DomainName", "LiveDomainType", "LiveDomainStatus", "RegionName", "Cname", "GmtCreated",
                 "GmtModified", "Description", "ResourceGroupId")

_CHOICES = {
    "LiveDomainType": ("liveVideo", "liveEdge"),
    "DomainStatus": ("online", "offline", "configuring"),
    "DomainSearchType": ("fuzzy_match", "pre_match", "suf_match", "full_match"),
}
_FREE = ("DomainName", "RegionName", "ResourceGroupId")
_PAGE_MAX, _PAGE_NUMBER_MAX, _PAGE_DEFAULT = 50, 100_000, 20


@dataclass(frozen=True, slots=True)
class Listing:
    """A checked DescribeLiveUserDomains call: the page asked for and the filters (None: not given)."""

    page_number: int = 1
    page_size: int = _PAGE_DEFAULT
    domain_type: str | None = None
    status: str | None = None
    name: str | None = None
    search: str = "fuzzy_match"
    region: str | None = None
    resource_group: str | None = None

    def matches(self, domain: Mapping[str, str]) -> bool:
        """Whether a domain of the list (``DOMAIN_FIELDS``) passes every filter given."""
        if self.domain_type is not None and domain["LiveDomainType"] != self.domain_type:
            return False
        if self.status is not None and domain["LiveDomainStatus"] != self.status:
            return False
        if self.region is not None and domain["RegionName"] != self.region:
            return False
        if self.resource_group is not None and domain["ResourceGroupId"] != self.resource_group:
            return False
        if self.name is None:
            return True
        wanted, name = self.name.lower(), domain["DomainName"].lower()
        if self.search == "pre_match":
            return name.startswith(wanted)
        if self.search == "suf_match":
            return name.endswith(wanted)
        return name == wanted if self.search == "full_match" else wanted in name


def check_listing(params: Mapping[str, str]) -> Listing:
    """The page and filters of a DescribeLiveUserDomains call, or Reject (MalformedParam)."""
    taken = {"PageSize", "PageNumber", *_CHOICES, *_FREE}
    unknown = sorted(k for k, v in params.items() if v and k not in taken and k not in _ANY_CALL)
    if unknown:
        raise Reject("MalformedParam", f"{', '.join(unknown)} is not a parameter of {LISTING.name}")
    for name, choices in _CHOICES.items():
        if (value := params.get(name)) and value not in choices:
            raise Reject("MalformedParam", f"The {name} parameter must be one of {', '.join(choices)}")
    size = _number(params, "PageSize", _PAGE_DEFAULT, _PAGE_MAX)
    number = _number(params, "PageNumber", 1, _PAGE_NUMBER_MAX)
    return Listing(number, size, params.get("LiveDomainType") or None, params.get("DomainStatus") or None,
                   params.get("DomainName") or None, params.get("DomainSearchType") or "fuzzy_match",
                   params.get("RegionName") or None, params.get("ResourceGroupId") or None)


def _number(params: Mapping[str, str], name: str, default: int, most: int) -> int:
    value = params.get(name)
    if not value:
        return default
    if not value.isdigit() or not 1 <= int(value) <= most:
        raise Reject("MalformedParam", f"The {name} parameter must be a whole number from 1 to {most}")
    return int(value)


#: parameters whose values are secrets: masked wherever the simulator shows parameters
SECRET_PARAMS: frozenset[str] = frozenset(f.name for family in FAMILIES for f in family.fields if f.secret)

#: parameters any call may carry besides its action's own (RegionId is optional and free-form)
_ANY_CALL = COMMON_PARAMS | {"RegionId"}


def resolve(action: str | None, version: str | None) -> Operation:
    """The operation a call names, or Reject (MissingParam, InvalidVersion, InvalidAction.NotFound)."""
    if not action:
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
    """The action's own parameters of a call, or Reject: MalformedParam or MissingParam, as documented.

    Values are taken exactly as sent (an empty one counts as absent);
    DomainName comes back in lower case without a final dot, the form the
    state is kept in.
    """
    family, verb = operation.family, operation.verb
    if family is None:
        raise ValueError(f"{operation.name} is checked by check_listing")
    names = {f.name for f in operation.takes}
    unknown = sorted(k for k, v in params.items() if v and k not in names and k not in _ANY_CALL)
    if unknown:
        raise family.refuse("MalformedParam", f"{', '.join(unknown)} is not a parameter of {operation.name}")
    values: dict[str, str] = {}
    for f in operation.takes:
        value = params.get(f.name, "")
        if not value:
            continue
        if problem := _PROBLEM[f.rule](value):
            raise family.refuse("MalformedParam", f"The {f.name} parameter {problem}")
        values[f.name] = value
    for f in operation.takes:
        if f.name in values:
            continue
        if verb in f.required:
            raise family.refuse("MissingParam", f"The {f.name} parameter is required")
        if f.required_when is not None and values.get(f.required_when[0]) == f.required_when[1]:
            switch, value = f.required_when
            raise family.refuse("MissingParam", f"The {f.name} parameter is required when {switch} is {value}")
    values["DomainName"] = values["DomainName"].lower().removesuffix(".")
    return values
