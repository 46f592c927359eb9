"""The fleet's inventory: the account's domains, and what each one's snapshot callbacks are set to.

    async with LiveClient(credentials=source, endpoint=url) as client:
        listed = await list_domains(client, DomainFilter(status="online", name="example.com"))
    write_table(Path("domains.csv"), [d.row for d in listed.domains], columns=DOMAIN_COLUMNS)  # input of bulk run

    job = ExportJob()
    result = await engine.run(export_options(Path("domains.csv"), checkpoint=ckpt), client=client, job=job)
    rows = export_rows(job)           # URL, auth switches and key fingerprints per domain; never a key

Operators have an account, not a domain list. ``list_domains`` pages
through ``DescribeLiveUserDomains`` (``actions.LIST_DOMAINS``: at most 50 a
page, on its own quota of 100 calls per second per account) with the
engine's own call path: the pacer, the retry policy and the call log of a
run, so a listing is paced, retried and logged as every other call. The
rows it gives have a DomainName and a RegionId column (where the domain
is), which is what ``bulk run`` takes.

``bulk export`` is an engine run over such a list with an ``ExportJob``:
each domain's config is read in every family (Describe and Query) and the
answers are kept, keys as fingerprints, instead of being thrown away once
the row is ``done``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .actions import FAMILIES, LIST_DOMAINS, SECRET_PARAMS, normalize_domain
from .attempts import Caller, CallLog, Health
from .client import Failure, LiveClient
from .credentials import CredentialsError
from .inputs import Format, detect_format
from .inputs.writing import write_rows
from .jobs import ExportJob
from .lanes import Lane
from .options import Halt, HaltKind, RunOptions, RunStats, Tuning
from .pacing import Pacers
from .retry import RetryPolicy

__all__ = ["DETAIL_COLUMNS", "DOMAIN_COLUMNS", "EXPORT_COLUMNS", "DomainFilter", "DomainList", "ListedDomain",
           "export_options", "export_rows", "list_domains", "table_format", "write_table"]

#: the columns ``bulk domains`` writes: an input of ``bulk run`` (RegionId: the region each row's calls go to)
DOMAIN_COLUMNS = ("DomainName", "RegionId")
#: the extra columns of ``bulk domains --details`` (not an input of ``bulk run``: it refuses unknown columns)
DETAIL_COLUMNS = ("LiveDomainType", "LiveDomainStatus", "Cname", "GmtCreated", "GmtModified", "Description",
                  "ResourceGroupId")
#: the columns of ``bulk export``: each family's fields, a key as ``<Name>Fingerprint``
EXPORT_COLUMNS = ("DomainName", *(
    f"{name}Fingerprint" if name in SECRET_PARAMS else name for family in FAMILIES for name in family.read.returns[1:]
))


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainFilter:
    """Which domains to list (None: any), as DescribeLiveUserDomains filters them."""

    #: liveVideo (streaming) or liveEdge (edge ingest)
    domain_type: str | None = None
    #: online, offline or configuring
    status: str | None = None
    #: a part of the name, matched as ``search`` says
    name: str | None = None
    #: fuzzy_match (the service's default), pre_match, suf_match or full_match
    search: str | None = None
    #: the region the domain is in, such as cn-shanghai
    region: str | None = None

    def params(self) -> dict[str, str]:
        """The call's filter parameters."""
        given = {"LiveDomainType": self.domain_type, "DomainStatus": self.status, "DomainName": self.name,
                 "DomainSearchType": self.search, "RegionName": self.region}
        return {k: v for k, v in given.items() if v}


@dataclass(frozen=True, slots=True)
class ListedDomain:
    """One domain of the account as the listing shows it (``fields``: the answer's PageData entry, as strings)."""

    name: str
    fields: dict[str, str] = field(repr=False)

    @property
    def row(self) -> dict[str, str]:
        """The domain as a row of ``bulk run``'s input: DomainName and RegionId (where the domain is)."""
        return {"DomainName": self.name, "RegionId": self.fields.get("RegionName", "")}

    @property
    def details(self) -> dict[str, str]:
        """``row`` and every other field the listing gave (``DETAIL_COLUMNS``)."""
        return {**self.row, **{c: self.fields.get(c, "") for c in DETAIL_COLUMNS}}


@dataclass(frozen=True, slots=True)
class DomainList:
    """What a listing found: its domains (each once), the service's TotalCount, and why it stopped early, if it did.

    ``halt`` (stopped: a signal, refused credentials) or ``failure`` (a page
    the service refused, one still failing after every retry, or pages that
    never added up to TotalCount) means the list is incomplete and must not
    be used as the fleet. ``pages``: the pages read, every read counted.
    """

    domains: tuple[ListedDomain, ...]
    total: int
    pages: int
    halt: Halt | None = None
    failure: Failure | None = None

    @property
    def complete(self) -> bool:
        """Whether every page was read."""
        return self.halt is None and self.failure is None


async def list_domains(
    client: LiveClient,
    filters: DomainFilter = DomainFilter(),
    *,
    retry: RetryPolicy | None = None,
    stop: asyncio.Event | None = None,
    log: CallLog | None = None,
    page_size: int | None = None,
) -> DomainList:
    """Every page of DescribeLiveUserDomains under ``filters``, through the engine's Caller (paced, retried).

    TotalCount says where the list ends: pages are read in order until they
    cover it, whatever their length (a short or empty page before the end is
    not the end; only an answer without a TotalCount ends at a short page).
    A read whose pages held fewer entries than the total, or whose total
    changed from one page to the next (a domain added or deleted meanwhile
    shifts the others across pages), is made again, up to ``_READS`` times;
    a domain seen twice is kept once. A list that never adds up is returned
    with an ``IncompleteListing`` failure: it must not stand for the fleet.
    ``page_size`` defaults to the most a page may hold.
    """
    size = page_size or LIST_DOMAINS.page_max or 50
    found: dict[str, ListedDomain] = {}
    total = pages = 0
    with Lane().following(stop) as lane:
        try:
            account = await client.access_key_id()
        except CredentialsError as exc:
            return DomainList((), 0, 0, halt=Halt(HaltKind.CREDENTIALS_UNAVAILABLE, str(exc)))
        caller = Caller(client=client, pacers=Pacers(LIST_DOMAINS.quota or 30.0), account=account,
                        retry=retry or RetryPolicy(), lane=lane, stats=RunStats(),
                        health=Health(endpoint=client.endpoint), log=log)
        for _ in range(_READS):
            totals: set[int | None] = set()
            entries = page = 0
            while page < _PAGE_NUMBER_MAX:
                page += 1
                params = {**filters.params(), "PageSize": str(size), "PageNumber": str(page)}
                tried = await caller.call(LIST_DOMAINS, params, line=page, domain="")
                outcome = tried.outcome
                if outcome is None:
                    halt = lane.halt or Halt(HaltKind.INTERRUPTED, "interrupted")
                    return DomainList(tuple(found.values()), total, pages, halt=halt)
                if isinstance(outcome, Failure):
                    return DomainList(tuple(found.values()), total, pages, failure=outcome)
                pages += 1
                data = _page_data(outcome.body)
                said = _count(outcome.body.get("TotalCount"))
                totals.add(said)
                total = said if said is not None else total
                entries += len(data)
                for entry in data:
                    name = normalize_domain(entry.get("DomainName", "")) or entry.get("DomainName", "")
                    if name and name not in found:
                        found[name] = ListedDomain(name, entry)
                if (page * size >= said) if said is not None else (len(data) < size):
                    break
            if len(totals) == 1 and entries >= (next(iter(totals)) or 0):
                return DomainList(tuple(found.values()), total, pages)
        short = Failure("IncompleteListing", f"{_READS} reads of the list never held TotalCount's {total} domains "
                        "with a total that stayed put; nothing is missing from a list only once they do", None, None,
                        True, 0.0)
        return DomainList(tuple(found.values()), total, pages, failure=short)


#: how many times a listing whose pages do not add up to its TotalCount is read
_READS = 3
#: the largest PageNumber the service takes
_PAGE_NUMBER_MAX = 100_000


def export_options(input_path: Path, *, checkpoint: Path, tuning: Tuning | None = None,
                   profiles: frozenset[str] | None = None) -> RunOptions:
    """The run ``bulk export`` makes over a domain list (DomainName, optional RegionId and Profile columns).

    It reads with the first family's read action (the one rows are checked
    against); its ``ExportJob`` reads every family's.
    """
    return RunOptions(action=FAMILIES[0].read, input_path=input_path, checkpoint_path=checkpoint,
                      profiles=profiles, **(tuning or Tuning()).fields())


def export_rows(job: ExportJob) -> list[dict[str, str]]:
    """The rows an export read, in input order, with every column of ``EXPORT_COLUMNS``."""
    return [{c: kept.get(c, "") for c in EXPORT_COLUMNS} for _, kept in sorted(job.results.items())]


def table_format(path: Path | None, given: str | None) -> Format:
    """The format of a table: ``given`` (csv or jsonl), else ``path``'s suffix, else CSV."""
    if given is not None:
        return Format(given)
    fmt = detect_format(path) if path is not None else Format.CSV
    return Format.CSV if fmt is Format.LIST else fmt


def write_table(path: Path, rows: Iterable[Mapping[str, str]], *, columns: Sequence[str],
                fmt: Format | None = None) -> None:
    """Write rows as CSV or JSONL (by ``fmt``, else ``path``'s suffix), atomically, mode 0600."""
    write_rows(path, fmt or table_format(path, None), rows, columns=columns)


def _page_data(body: Mapping[str, object]) -> list[dict[str, str]]:
    """The PageData entries of an answer, each field as a string."""
    domains = body.get("Domains")
    data = domains.get("PageData") if isinstance(domains, dict) else None
    if not isinstance(data, list):
        return []
    return [{k: "" if v is None else str(v) for k, v in entry.items()} for entry in data if isinstance(entry, dict)]


def _count(value: object) -> int | None:
    """A count the answer gives as a number or as text; None when it gives none."""
    if isinstance(value, bool):
        return None
    try:
        return int(value) if isinstance(value, int) else int(str(value).strip())
    except ValueError:
        return None
