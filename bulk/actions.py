"""The snapshot-callback family of the Live API, declared once.

    >>> action = resolve("add-live-snapshot-notify-config")
    >>> action.validate({"DomainName": "live.example.com", "NotifyUrl": "https://cb.example.com/s"})
    {'DomainName': 'live.example.com', 'NotifyUrl': 'https://cb.example.com/s'}
    >>> action.reader.name, action.update.name
    ('DescribeLiveSnapshotNotifyConfig', 'UpdateLiveSnapshotNotifyConfig')

Every other module (input checks, the client, the simulator, plan and verify)
reads parameters, constraints and response shapes from this catalogue, so the
documented rules live in exactly one place. Actions on one kind of config
form a ``Family`` (what reads it, creates, updates and deletes it, and how a
rotation sets its key): each action reaches its partners by reference
through its family, so a new family is one declaration here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from urllib.parse import urlsplit

import idna

from .errors import UsageError

__all__ = [
    "API_VERSION", "ACTIONS", "FAMILIES", "LIST_DOMAINS", "SECRET_PARAMS", "Action", "Family", "InvalidParams",
    "KeyRotation", "Kind", "Param", "check_region", "normalize_domain", "plain_values", "recorded_action", "resolve",
]

API_VERSION = "2016-11-01"

_DOMAIN = re.compile(r"^(?=.{1,253}$)(\*\.)?(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))+$")
_KEY = re.compile(r"^[A-Za-z0-9]{16,32}$")
_URL_MAX = 500
# Region IDs as the service names them: cn-shanghai, ap-southeast-1, cn-shanghai-finance-1.
_REGION = re.compile(r"[a-z]{2,}(?:-[a-z0-9]+){1,4}")
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"


def normalize_domain(value: str) -> str | None:
    """``value`` as DNS compares names (lower case, no trailing dot, IDNA ``xn--`` labels), or None if invalid.

    Non-ASCII names go through the ``idna`` package (IDNA 2008 with UTS #46
    mapping, as yarl encodes URL hosts for aiohttp): the standard library's
    IDNA 2003 codec would turn ``faß.de`` into ``fass.de``, another domain.
    A leading ``*.`` (a wildcard domain) is kept as it is.
    """
    try:
        return _clean_domain(value)
    except _Malformed:
        return None


def plain_values(action: Action) -> dict[str, str]:
    """Per parameter of ``action`` and RegionId, a regex for values valid exactly as written.

    Such a value is sent unchanged and holds no comma, quote or white space:
    a CSV line made only of them needs no check value by value.
    """
    return {**{p.name: p.shape or _PLAIN[p.kind] for p in action.params}, "RegionId": _REGION.pattern}


def check_region(value: str) -> str | None:
    """Why ``value`` is not a RegionId (an optional common parameter of every call), or None."""
    return None if _REGION.fullmatch(value) else "is not a region ID (such as cn-shanghai)"


class InvalidParams(ValueError):
    """A row's parameters break the action's documented rules.

    ``code`` is the service's own error code for the same mistake
    (MissingParam or MalformedParam), so the simulator can answer with it.
    The message never contains a secret value.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Kind(Enum):
    """What a parameter's value is, and so how it is checked and cleaned."""

    DOMAIN = "domain"
    URL = "url"
    YESNO = "yes/no"
    KEY = "key"
    #: free text of at most 253 printable characters without white space (a name filter, a region name)
    TEXT = "text"
    #: a whole number from 1 up, in decimal digits (a page number or size)
    COUNT = "count"


# Values of each kind that are valid exactly as written (their clean() returns them unchanged) and
# hold no comma, quote or white space; the look-ahead bounds the length of a comma-separated field.
_PLAIN: dict[Kind, str] = {
    Kind.DOMAIN: rf"(?![^,\r\n]{{254}})(?:\*\.)?{_LABEL}(?:\.{_LABEL})+",
    Kind.URL: rf"(?![^,\r\n]{{{_URL_MAX + 1}}})https?://[A-Za-z0-9.-]+(?::[0-9]*)?(?:[/?#][!#-+\--~]*)?",
    Kind.YESNO: "yes|no",
    Kind.KEY: "[A-Za-z0-9]{16,32}",
    Kind.TEXT: r"[!#-+\--~]{1,253}",
    Kind.COUNT: "[1-9][0-9]{0,8}",
}
# URLs this plain pass _clean_url's full check: matching them first spares a urlsplit per row.
_PLAIN_URL = re.compile(_PLAIN[Kind.URL])


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of an action: its kind of value, whether it is required, whether it is a secret."""

    name: str
    kind: Kind
    required: bool = False
    secret: bool = False
    #: a regex of the documented values, where they are fewer than the kind's (a choice, a count up to a bound)
    shape: str | None = None

    def check(self, value: str) -> str | None:
        """Return why ``value`` is malformed, or None when it is fine (a domain in any DNS-equal form)."""
        try:
            _clean(self)(value)
        except _Malformed as exc:
            return str(exc)
        return None


class _Malformed(ValueError):
    """Why a value is malformed; the message never holds the value."""


# Each takes a stripped, non-empty value and returns it as sent, or raises _Malformed.


def _clean_domain(value: str) -> str:
    if not value.isascii():
        wildcard = value.startswith("*.")
        try:
            value = idna.encode(value[2:] if wildcard else value, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            raise _Malformed("is not a valid domain name") from None
        value = "*." + value if wildcard else value
    value = value.lower().removesuffix(".")
    if _DOMAIN.match(value) is None:
        raise _Malformed("is not a valid domain name")
    return value


def _clean_url(value: str) -> str:
    if len(value) > _URL_MAX:
        raise _Malformed(f"is longer than {_URL_MAX} characters")
    if _PLAIN_URL.fullmatch(value) is None:
        try:
            parts = urlsplit(value)
            host = parts.hostname
        except ValueError:  # a bracketed host that is not an IP address, or NFKC tricks in the host
            raise _Malformed("is not a valid http(s) URL") from None
        if parts.scheme not in ("http", "https") or not host or not value.isprintable() or " " in value:
            raise _Malformed("is not a valid http(s) URL")  # no white space, control or format character
    return value


def _clean_key(value: str) -> str:
    if _KEY.match(value) is None:
        raise _Malformed("must be 16 to 32 letters or digits")  # never the key itself: it is a secret
    return value


def _clean(param: Param) -> Callable[[str], str]:
    """``param``'s kind's clean, narrowed to its shape (the documented values) if it has one."""
    clean = _CLEAN[param.kind]
    if param.shape is None:
        return clean
    narrow = _shaped(param.shape, f"is none of {param.shape.replace('|', ', ')}")
    return lambda value: narrow(clean(value))


def _shaped(pattern: str, why: str) -> Callable[[str], str]:
    """A clean that takes, unchanged, exactly the values ``pattern`` matches in full."""
    return lambda value: value if re.fullmatch(pattern, value) else _refuse(why)


def _refuse(why: str) -> str:
    raise _Malformed(why)


_CLEAN: dict[Kind, Callable[[str], str]] = {
    Kind.DOMAIN: _clean_domain,
    Kind.URL: _clean_url,
    Kind.YESNO: _shaped(_PLAIN[Kind.YESNO], "must be yes or no"),
    Kind.KEY: _clean_key,
    Kind.TEXT: _shaped(_PLAIN[Kind.TEXT], "must be 1 to 253 letters, digits or punctuation, without quotes or commas"),
    Kind.COUNT: _shaped(_PLAIN[Kind.COUNT], "must be a whole number from 1"),
}


@dataclass(frozen=True, slots=True)
class Action:
    """One API operation: its parameters, rules and response fields."""

    name: str
    params: tuple[Param, ...]
    idempotent: bool
    read_only: bool = False
    #: fields a successful response carries (besides RequestId)
    returns: tuple[str, ...] = ()
    #: (switch, key): the key is required when the switch is "yes"
    auth_pair: tuple[str, str] | None = None
    #: what the family's read action shows once this action has been applied
    expect: Callable[[Mapping[str, str]], dict[str, str]] | None = None
    #: (read-only actions) fields whose value shows that a config exists
    present: tuple[str, ...] = ()
    #: at least one of these must be given (an Update that changes nothing is a mistake)
    one_of: tuple[str, ...] = ()
    #: it removes its family's config: where one exists it is its own update, where none does nothing is created
    deletes: bool = False
    #: the action's own quota, calls per second per account (None: the run's --qps, 30 by default)
    quota: float | None = None
    #: (a paged list) the most items one page may hold, the largest PageSize
    page_max: int | None = None
    #: the actions on the same config, linked once by ``Family`` (None: an action outside any family)
    family: Family | None = field(default=None, repr=False, compare=False)
    # Derived once, as validate runs for every row of a file: (name, required, clean).
    _rules: tuple[tuple[str, bool, Callable[[str], str]], ...] = field(init=False, repr=False, compare=False)
    _allowed: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_rules", tuple((p.name, p.required, _clean(p)) for p in self.params))
        # RegionId is a common parameter of every call, not one of the action's.
        object.__setattr__(self, "_allowed", frozenset((*self.param_names, "RegionId")))

    @property
    def reader(self) -> Action | None:
        """The read-only action that shows this one's effect (None for a read-only action)."""
        return None if self.family is None or self.read_only else self.family.read

    @property
    def create(self) -> Action | None:
        """The action that makes this change where no config exists yet (None: nothing to create)."""
        return None if self.family is None or self.read_only or self.deletes else self.family.create

    @property
    def update(self) -> Action | None:
        """The action that makes this change where a config exists."""
        if self.family is None or self.read_only:
            return None
        return self if self.deletes else self.family.update

    @property
    def delete(self) -> Action | None:
        """The action that removes the config this one changes."""
        return None if self.family is None or self.read_only else self.family.delete

    @property
    def kebab(self) -> str:
        """The name as a CLI word: AddLiveSnapshotNotifyConfig -> add-live-snapshot-notify-config."""
        return re.sub(r"(?<!^)(?=[A-Z])", "-", self.name).lower()

    @property
    def param_names(self) -> tuple[str, ...]:
        """The parameter names, in catalogue order."""
        return tuple(p.name for p in self.params)

    @property
    def secret_names(self) -> frozenset[str]:
        """The parameters whose values are secrets: never shown, a fingerprint stands in."""
        return frozenset(p.name for p in self.params if p.secret)

    def validate(self, row: Mapping[str, object]) -> dict[str, str]:
        """Check a row and return the parameters to send, in catalogue order.

        Empty values count as absent; unknown columns are an error, since a
        misspelt column would otherwise be silently dropped. DomainName is
        sent in its DNS form (``normalize_domain``). RegionId is let through
        unchecked and not returned: it is the caller's.
        """
        if not self._allowed.issuperset(row):
            unknown = sorted(k for k, v in row.items() if k not in self._allowed and _present(v))
            if unknown:
                raise InvalidParams("MalformedParam", f"unknown parameter(s) for {self.name}: {', '.join(unknown)}")
        out: dict[str, str] = {}
        for name, required, clean in self._rules:
            raw = row.get(name)
            if isinstance(raw, str):
                if value := raw.strip():
                    try:
                        out[name] = clean(value)
                    except _Malformed as exc:
                        raise InvalidParams("MalformedParam", f"{name} {exc}") from None
                    continue
            elif raw is not None:
                raise InvalidParams("MalformedParam", f"{name} must be a string")
            if required:
                raise InvalidParams("MissingParam", f"{name} is required")
        if self.one_of and not any(n in out for n in self.one_of):
            raise InvalidParams("MissingParam", f"{self.name} needs at least one of {', '.join(self.one_of)}")
        if self.auth_pair:
            switch, key = self.auth_pair
            if out.get(switch) == "yes" and key not in out:
                raise InvalidParams("MissingParam", f"{key} is required when {switch} is yes")
        return out

    def read(self, body: Mapping[str, object]) -> dict[str, str]:
        """The fields this action returns, as strings ('' when absent)."""
        return {f: str(body.get(f) or "") for f in self.returns}

    def differences(self, params: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
        """Fields where the live state (read with ``reader``) differs from what ``params`` set.

        What is compared is the action's ``expect``: for a create, the whole
        config it makes (an omitted field being its documented default); for an
        update, only what the row sets (an omitted field keeps the service's
        value). Only names are returned, never values: some are secrets.
        """
        if self.expect is None:
            raise ValueError(f"{self.name} has no read-back")
        return [f for f, want in self.expect(params).items() if current.get(f, "") != want]

    def exists(self, current: Mapping[str, str]) -> bool:
        """(read-only actions) Whether the state read shows a config at all."""
        return any(current.get(f, "") not in ("", "no") for f in self.present)


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


_DOMAIN_P = Param("DomainName", Kind.DOMAIN, required=True)
_NOTIFY = (
    _DOMAIN_P,
    Param("NotifyUrl", Kind.URL, required=True),
    Param("NotifyReqAuth", Kind.YESNO),
    Param("NotifyAuthKey", Kind.KEY, secret=True),
)
_NOTIFY_FIELDS = ("DomainName", "NotifyUrl", "NotifyReqAuth", "NotifyAuthKey")
_CALLBACK_FIELDS = ("DomainName", "CallbackReqAuth", "CallbackAuthKey")


def _notify_set(p: Mapping[str, str]) -> dict[str, str]:
    # What the row sets and nothing else: an Update keeps what it leaves out.
    return {f: p[f] for f in _NOTIFY_FIELDS[1:] if f in p}


def _notify_add(p: Mapping[str, str]) -> dict[str, str]:
    # The whole config an Add makes: an omitted field is its documented default
    # (NotifyReqAuth=no), and without auth the key is not compared (nothing checks it).
    auth = p.get("NotifyReqAuth") or "no"
    held = {"NotifyUrl": p["NotifyUrl"], "NotifyReqAuth": auth}
    if auth == "yes":
        held["NotifyAuthKey"] = p["NotifyAuthKey"]
    return held


def _callback_set(p: Mapping[str, str]) -> dict[str, str]:
    return {"CallbackReqAuth": p["CallbackReqAuth"], "CallbackAuthKey": p["CallbackAuthKey"]}

_ADD_NOTIFY = Action(
    "AddLiveSnapshotNotifyConfig", _NOTIFY, idempotent=False,
    auth_pair=("NotifyReqAuth", "NotifyAuthKey"), expect=_notify_add,
)
_UPDATE_NOTIFY = Action(
    # The Update page marks NotifyUrl optional; an omitted field keeps its value.
    "UpdateLiveSnapshotNotifyConfig", (_DOMAIN_P, replace(_NOTIFY[1], required=False), *_NOTIFY[2:]),
    idempotent=True, auth_pair=("NotifyReqAuth", "NotifyAuthKey"), one_of=_NOTIFY_FIELDS[1:], expect=_notify_set,
)
_DESCRIBE_NOTIFY = Action(
    "DescribeLiveSnapshotNotifyConfig", (_DOMAIN_P,), idempotent=True,
    read_only=True, returns=_NOTIFY_FIELDS, present=("NotifyUrl",),
)
_DELETE_NOTIFY = Action(
    "DeleteLiveSnapshotNotifyConfig", (_DOMAIN_P,), idempotent=True, expect=lambda p: {"NotifyUrl": ""}, deletes=True,
)
_SET_CALLBACK = Action(
    "SetSnapshotCallbackAuth",
    (
        _DOMAIN_P,
        Param("CallbackReqAuth", Kind.YESNO, required=True),
        Param("CallbackAuthKey", Kind.KEY, required=True, secret=True),
    ),
    idempotent=True, expect=_callback_set,
)
_QUERY_CALLBACK = Action(
    "QuerySnapshotCallbackAuth", (_DOMAIN_P,), idempotent=True,
    read_only=True, returns=_CALLBACK_FIELDS, present=("CallbackReqAuth", "CallbackAuthKey"),
)
_DELETE_CALLBACK = Action(
    "DeleteSnapshotCallbackAuth", (_DOMAIN_P,), idempotent=True, expect=lambda p: {"CallbackAuthKey": ""},
    deletes=True,
)

#: the account's live domains, a page at a time (``bulk domains``); every parameter is an optional filter
LIST_DOMAINS = Action(
    "DescribeLiveUserDomains",
    (Param("PageSize", Kind.COUNT, shape="[1-9]|[1-4][0-9]|50"), Param("PageNumber", Kind.COUNT,
     shape="[1-9][0-9]{0,4}|100000"), Param("LiveDomainType", Kind.TEXT, shape="liveVideo|liveEdge"),
     Param("DomainStatus", Kind.TEXT, shape="online|offline|configuring"), Param("DomainName", Kind.TEXT),
     Param("DomainSearchType", Kind.TEXT, shape="fuzzy_match|pre_match|suf_match|full_match"),
     *(Param(name, Kind.TEXT) for name in ("RegionName", "ResourceGroupId"))),
    idempotent=True, read_only=True, returns=("PageNumber", "PageSize", "TotalCount"), quota=100, page_max=50,
)

ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (_ADD_NOTIFY, _UPDATE_NOTIFY, _DESCRIBE_NOTIFY, _DELETE_NOTIFY, _SET_CALLBACK, _QUERY_CALLBACK,
              _DELETE_CALLBACK, LIST_DOMAINS)
}

#: every parameter name that holds a secret, across the family
SECRET_PARAMS: frozenset[str] = frozenset().union(*(a.secret_names for a in ACTIONS.values()))


@dataclass(frozen=True, slots=True)
class KeyRotation:
    """How ``bulk rotate --via VIA`` gives each domain a new key with its family's update action."""

    #: the --via name
    via: str
    #: the parameter that holds the key: the keys file's column
    key: str
    #: the yes/no parameter that turns the key on, set to yes on every row
    switch: str
    #: parameters kept from the live config, read right before each call
    keep: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Family:
    """One kind of config and the actions on it, by reference: what reads, creates, updates and deletes it.

    Declaring it links each of its actions to it (``Action.family``), once.
    """

    read: Action
    create: Action
    update: Action
    delete: Action
    #: how ``bulk rotate`` gives each domain a new key through this family (None: it cannot)
    rotation: KeyRotation | None = None
    #: what ``bulk rollback`` sends to put a domain's config back as ``read`` showed it
    restore: Action = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for action in (self.read, self.create, self.update, self.delete):
            object.__setattr__(action, "family", self)
        object.__setattr__(self, "restore", _restore(self))


def _restore(family: Family) -> Action:
    """A row of ``bulk rollback``: a domain's whole state as ``family.read`` showed it, to be put back.

    Not an API action (the simulator and ``resolve`` never see it): a row is
    sent as Delete, the create or the update action, whichever turns the
    live state into this one. Its read-back compares every field exactly,
    since an empty field (no key) must be empty again; a row with no field
    but DomainName is a domain that had no config.
    """
    reader, writer = family.read, family.create
    fields = reader.returns[1:]
    kinds = {p.name: p for p in writer.params}

    def expect(p: Mapping[str, str]) -> dict[str, str]:
        """What the read-back must show: the backed-up fields, or no config for a row that had none."""
        if not reader.exists(p):
            return dict.fromkeys(reader.present, "")
        return {f: p.get(f, "") for f in fields}

    return Action(
        "Restore" + reader.name.removeprefix("Describe").removeprefix("Query"),
        (_DOMAIN_P, *(replace(kinds[f], required=False) for f in fields)),
        idempotent=True, auth_pair=writer.auth_pair, expect=expect, family=family,
    )


#: every family of the catalogue
FAMILIES: tuple[Family, ...] = (
    Family(read=_QUERY_CALLBACK, create=_SET_CALLBACK, update=_SET_CALLBACK, delete=_DELETE_CALLBACK,
           rotation=KeyRotation("set-callback-auth", key="CallbackAuthKey", switch="CallbackReqAuth")),
    Family(read=_DESCRIBE_NOTIFY, create=_ADD_NOTIFY, update=_UPDATE_NOTIFY, delete=_DELETE_NOTIFY,
           rotation=KeyRotation("update-notify-config", key="NotifyAuthKey", switch="NotifyReqAuth",
                                keep=("NotifyUrl",))),
)


def recorded_action(name: str) -> Action:
    """An action as a checkpoint names it: an API action, or a rollback's restore action."""
    for family in FAMILIES:
        if family.restore.name == name:
            return family.restore
    return resolve(name)


def resolve(name: str) -> Action:
    """Find an action by its API name or a kebab/snake form, case-insensitively."""
    wanted = name.replace("-", "").replace("_", "").lower()
    for action in ACTIONS.values():
        if action.name.lower() == wanted:
            return action
    names = ", ".join(ACTIONS)
    raise UsageError(f"unknown action {name!r}; expected one of: {names}")
