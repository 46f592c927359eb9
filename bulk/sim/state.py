"""The simulated account's domains: one config per domain and action family, kept across restarts.

    state = State(missing_domains=("*.gone.example.com",))
    state.apply(OPERATIONS["AddLiveSnapshotNotifyConfig"],
                {"DomainName": "live.example.com", "NotifyUrl": "https://cb.example.com/s"})
    state.configs("notify")["live.example.com"]   # {"DomainName": ..., "NotifyUrl": ..., "NotifyReqAuth": "no", ...}
    await state.save(path)                         # 0600, written whole; State.load(path) reads it back

The account's domain list (``DescribeLiveUserDomains``) is every domain
added with ``add_domain`` (or ``SimConfig.domains``, or a state file's
``domains``) and every domain that holds a config, the latter as an online
``liveVideo`` domain of the region that ``SimConfig.domain_regions`` gives
it (else cn-shanghai).

Nothing here knows an action by name: what an action does (create, update,
set, read, delete) and which fields its family's config holds come from the
table in ``constraints``, so a new family is one row there. Domains are
keyed in lower case (DNS names are case-insensitive).
"""

from __future__ import annotations

import asyncio
import collections
import fnmatch
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from ..files import write_atomic
from .constraints import DOMAIN_FIELDS, FAMILIES, Family, Listing, Operation, Reject, Verb

__all__ = ["State"]

_VERSION = 1
#: where a domain that holds a config but was never added is, unless ``domain_regions`` says otherwise
_REGION = "cn-shanghai"


class State:
    """Per action family, lower-case domain -> its config; what was applied, and whether it changed since saved."""

    __slots__ = ("_stores", "applied", "dirty", "domains", "_missing", "_regions")

    def __init__(
        self, *, missing_domains: tuple[str, ...] = (), domain_regions: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self._stores: dict[str, dict[str, dict[str, str]]] = {family.name: {} for family in FAMILIES}
        #: lower-case domain -> its entry in the account's domain list (``DOMAIN_FIELDS``)
        self.domains: dict[str, dict[str, str]] = {}
        self._regions = domain_regions
        #: (action, lower-case domain) -> how many times a change was applied
        self.applied: collections.Counter[tuple[str, str]] = collections.Counter()
        self.dirty = False
        patterns = "|".join(fnmatch.translate(p.lower()) for p in missing_domains)
        self._missing = re.compile(patterns) if patterns else None

    def configs(self, family: str) -> dict[str, dict[str, str]]:
        """The family's configs, lower-case domain -> fields (a live view: streams read it at every push)."""
        return self._stores[family]

    def counts(self) -> dict[str, int]:
        """How many domains hold a config, per family."""
        return {name: len(store) for name, store in self._stores.items()}

    def add_domain(self, fields: Mapping[str, str]) -> dict[str, str]:
        """Put a domain on the account's list (DomainName required; LiveDomainType, LiveDomainStatus, ...)."""
        entry = self._entry(fields["DomainName"], fields)
        self.domains[entry["DomainName"]] = entry
        self.dirty = True
        return entry

    def listing(self, query: Listing) -> dict[str, Any]:
        """One page of the account's domains that pass ``query``'s filters, as DescribeLiveUserDomains answers."""
        known = dict(self.domains)
        for store in self._stores.values():
            for name in store.keys() - known.keys():
                known[name] = self._entry(name, {})
        found = [known[name] for name in sorted(known) if query.matches(known[name])]
        start = (query.page_number - 1) * query.page_size
        return {"PageNumber": query.page_number, "PageSize": query.page_size, "TotalCount": len(found),
                "Domains": {"PageData": [dict(d) for d in found[start:start + query.page_size]]}}

    def _entry(self, name: str, fields: Mapping[str, str]) -> dict[str, str]:
        name = name.lower().removesuffix(".")
        region = next((r for pattern, r in self._regions if fnmatch.fnmatchcase(name, pattern.lower())), _REGION)
        defaults = {"DomainName": name, "LiveDomainType": "liveVideo", "LiveDomainStatus": "online",
                    "RegionName": region, "Cname": f"{name}.w.alikunlun.com", "GmtCreated": "2024-01-01T00:00:00Z",
                    "GmtModified": "2024-01-01T00:00:00Z", "Description": "", "ResourceGroupId": "rg-default"}
        return {**{f: fields.get(f) or defaults[f] for f in DOMAIN_FIELDS}, "DomainName": name}

    def apply(self, operation: Operation, values: dict[str, str]) -> dict[str, str]:
        """Carry out a checked call; the answer's fields, or Reject."""
        domain = values["DomainName"]
        key = domain.lower()
        if self._missing is not None and self._missing.match(key):
            raise Reject("InvalidDomain.NotFound")
        family, verb = operation.family, operation.verb
        if family is None:
            raise ValueError(f"{operation.name} is answered by listing")
        store = self._stores[family.name]
        if verb is Verb.READ:
            # The docs list no not-found error for reads; an unconfigured domain reads as empty fields.
            found = store.get(key) or {}
            return {f: found.get(f, domain if f == "DomainName" else "") for f in operation.returns}
        current = store.get(key)
        if verb is Verb.CREATE and current is not None:
            raise family.refuse("ConfigAlreadyExists", f"A {family.label} already exists for {domain}")
        if verb is Verb.UPDATE and current is None:
            raise family.refuse("ConfigNotFound", f"No {family.label} exists for {domain}")
        if verb is Verb.DELETE:
            store.pop(key, None)
        else:
            store[key] = _record(family, values, current if verb is Verb.UPDATE else None)
        self.applied[(operation.name, key)] += 1
        self.dirty = True
        return {}

    def load(self, path: Path) -> None:
        """Read what ``save`` wrote, if the file exists."""
        if not path.exists():
            return
        data = orjson.loads(path.read_bytes())
        if data.get("version") != _VERSION:
            raise ValueError(f"{path}: unsupported simulator state version {data.get('version')!r}")
        for name, store in self._stores.items():
            store.clear()  # in place: streams hold these dicts
            store.update({k: dict(v) for k, v in data.get(name, {}).items()})
        for fields in data.get("domains", {}).values():
            self.add_domain(fields)
        self.dirty = False

    async def save(self, path: Path) -> None:
        """Write every config to ``path`` (0600, whole or not at all)."""
        # Serialise on the loop (the dicts change under a thread), write off it.
        blob = orjson.dumps({"version": _VERSION, **self._stores, "domains": self.domains},
                            option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        self.dirty = False
        await asyncio.to_thread(write_atomic, path, blob)


def _record(family: Family, values: dict[str, str], current: dict[str, str] | None) -> dict[str, str]:
    """A stored config: given fields win, absent ones keep their current value (or the default)."""
    kept = current or {}
    return {
        "DomainName": values["DomainName"],
        **{f.name: values.get(f.name, kept.get(f.name, f.default)) for f in family.fields},
    }
