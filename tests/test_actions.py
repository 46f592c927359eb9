"""The catalogue's value rules: the quick URL check decides as the full one did; domains in DNS form."""

from __future__ import annotations

import random
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import run_engine, simulator

from bulk.actions import InvalidParams, Kind, Param, check_region, normalize_domain, resolve
from bulk.sim.constraints import OPERATIONS, Reject, check_listing
from bulk.sim.constraints import check as sim_check

URL = Param("NotifyUrl", Kind.URL, required=True)
NAME_253 = ".".join(["a" * 63] * 3 + ["b" * 61])


def url_check_before(value: str) -> str | None:
    """Param.check for a URL as it was before the quick path (which also let urlsplit's ValueError out), with
    the rule added since: no character that is not printable (a control or format character)."""
    if len(value) > 500:
        return "is longer than 500 characters"
    parts = urlsplit(value)
    if (parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value)
            or not value.isprintable()):
        return "is not a valid http(s) URL"
    return None


def same_verdict(value: str) -> None:
    try:
        before = url_check_before(value)
    except ValueError:
        before = "is not a valid http(s) URL"  # the old check crashed the whole reading here
    assert URL.check(value) == before, value


_URL_CHARACTERS = list("hHtTpPsS:/?#[]@.-_~%!$&'()*+,;=09aZ ") + [
    "\t", "\n", "\x00", "\x1f", "\u3000", "\u2100", "\u00e9", "\ufe13"]
_URL_SCHEMES = ["", "http://", "https://", "HTTP://", "Https://", "ftp://", "http:", "https:/", "http:///"]
_url_like = st.builds(
    lambda scheme, rest: scheme + rest,
    st.sampled_from(_URL_SCHEMES),
    st.lists(st.sampled_from(_URL_CHARACTERS), max_size=40).map("".join),
)


@settings(max_examples=200, deadline=None)
@given(value=_url_like)
def test_the_quick_url_check_decides_as_the_full_one_did(value: str) -> None:
    """Hypothesis explores the shapes and shrinks a disagreement to its smallest form; 200 examples, since
    generating one costs about 7 ms. The breadth comes from test_the_quick_url_check_agrees_on_a_seeded_corpus."""
    same_verdict(value)


def test_the_quick_url_check_agrees_on_a_seeded_corpus() -> None:
    """The same alphabet and schemes as the property, 40,000 strings from a seeded random.Random (about 20 us each,
    against 7 ms for a Hypothesis example): more strings than 3000 Hypothesis examples gave, at a tenth of the CPU.
    A disagreement names its string; the property above then finds its smallest form."""
    rng = random.Random(17)
    for _ in range(40_000):
        value = rng.choice(_URL_SCHEMES) + "".join(rng.choices(_URL_CHARACTERS, k=rng.randint(0, 40)))
        same_verdict(value)


@pytest.mark.parametrize("value", [
    "http://a", "https://cb.example.com", "https://cb.example.com:8443/p?q=1#f", "https://cb.example.com:/x",
    "https://cb.example.com:port/x", "https://1.2.3.4/x", "http://[::1]/x", "http://[::1", "http://::1]/",
    "http://[v1.x]/", "http://[not-ip]/", "https://user:pw@cb.example.com/x", "https://@cb.example.com",
    "https://user@/x", "http://", "http:///x", "https://-/x", "https://.../x", "https://a b/", "https://a/b c",
    "https://a/\u3000", "https://\u2100.com/", "https://ex\u00e9.com/", "HTTP://A/", " https://a/", "https://a/ ",
    "\x00https://a/", "https://a\t/", "http://a:8080", "http://a?b", "http://a#b", "https:a/b", "mailto:a@b.c",
    "https://a/" + "x" * 489, "https://a/" + "x" * 490, "https://a/" + "é" * 489, "https://a/" + "é" * 490,
])
def test_url_edge_cases(value: str) -> None:
    same_verdict(value)


def test_a_bracketed_host_that_is_not_an_address_is_a_bad_url_not_a_crash() -> None:
    with pytest.raises(ValueError):
        url_check_before("http://[::1/x")
    assert URL.check("http://[::1/x") == "is not a valid http(s) URL"
    action = resolve("AddLiveSnapshotNotifyConfig")
    with pytest.raises(ValueError, match="NotifyUrl is not a valid http"):
        action.validate({"DomainName": "a.example.com", "NotifyUrl": "http://[not-ip]/"})


@pytest.mark.parametrize(("value", "dns"), [
    ("a.example.com", "a.example.com"),
    ("A.Example.COM", "a.example.com"),
    ("a.example.com.", "a.example.com"),
    ("a.example.com..", None),
    (".", None),
    ("*.Example.com.", "*.example.com"),
    ("*.bücher.example", "*.xn--bcher-kva.example"),
    ("*.*.example.com", None),
    ("BÜCHER.example", "xn--bcher-kva.example"),
    ("bücher.example\u3002", "xn--bcher-kva.example"),  # an ideographic full stop ends it
    ("faß.de", "xn--fa-hia.de"),
    ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("例子.测试", "xn--fsqu00a.xn--0zwm56d"),
    ("☃.net", None),
    ("bücher", None),  # one label
    ("-a.example.com", None),
    ("a-.example.com", None),
    ("a_b.example.com", None),
    ("a" * 63 + ".com", "a" * 63 + ".com"),
    ("a" * 64 + ".com", None),
    (NAME_253, NAME_253),
    (NAME_253 + ".", NAME_253),  # 253 characters and the root's dot
    (NAME_253 + "a", None),
])
def test_domains_in_dns_form(value: str, dns: str | None) -> None:
    assert normalize_domain(value) == dns
    assert (Param("DomainName", Kind.DOMAIN).check(value) is None) == (dns is not None)


def test_a_row_is_sent_with_its_domain_in_dns_form() -> None:
    action = resolve("DescribeLiveSnapshotNotifyConfig")
    assert action.validate({"DomainName": " Bücher.Example. "}) == {"DomainName": "xn--bcher-kva.example"}


@pytest.mark.parametrize(("value", "ok"), [
    ("cn-shanghai", True), ("ap-southeast-1", True), ("cn-shanghai-finance-1", True), ("eu-central-1", True),
    ("cn", False), ("Cn-Shanghai", False), ("cn_shanghai", False), ("cn-", False), ("-cn", False),
    ("cn-shanghai ", False), ("cn-shanghai\n", False), ("shanghai", False),
])
def test_region_ids(value: str, ok: bool) -> None:
    assert (check_region(value) is None) == ok


@pytest.mark.parametrize("value", [
    "https://cb.example.com/a\x01b", "https://cb.example.com/a\x7fb",
    "https://cb.example.com/a\u200bb", "https://cb.example.com/\u00ad", "https://cb.example.com/\ud800",
])
def test_a_notify_url_with_a_character_no_url_holds_is_refused_as_the_service_does(value: str) -> None:
    # "The URL must be valid": a control or format character (or a lone surrogate, which no UTF-8 can carry) is
    # no part of one. The service refuses it (the simulator's table as its reading of the page), so bulk must not
    # send it: the row is refused before any call.
    row = {"DomainName": "a.example.com", "NotifyUrl": value}
    with pytest.raises(Reject) as refused:
        sim_check(OPERATIONS["AddLiveSnapshotNotifyConfig"], row)
    assert refused.value.code == "MalformedParam"
    for name in ("AddLiveSnapshotNotifyConfig", "UpdateLiveSnapshotNotifyConfig"):
        with pytest.raises(InvalidParams, match="NotifyUrl is not a valid http") as mine:
            resolve(name).validate(row)
        assert mine.value.code == "MalformedParam"
    assert URL.check("https://cb.example.com/\u00e9t\u00e9/\u4e2d") is None  # printable text beyond ASCII is fine


LISTING_VALUES = [  # (parameter, value, documented): DescribeLiveUserDomains' documented ranges and choices
    ("PageSize", "1", True), ("PageSize", "50", True), ("PageSize", "51", False), ("PageSize", "100", False),
    ("PageNumber", "100000", True), ("PageNumber", "100001", False),
    ("LiveDomainType", "liveEdge", True), ("LiveDomainType", "LiveVideo", False), ("LiveDomainType", "edge", False),
    ("DomainStatus", "configuring", True), ("DomainStatus", "Online", False), ("DomainStatus", "stopped", False),
    ("DomainSearchType", "suf_match", True), ("DomainSearchType", "exact_match", False),
]


@pytest.mark.parametrize(("name", "value", "documented"), LISTING_VALUES)
def test_listing_parameters_take_the_documented_values_only(name: str, value: str, documented: bool) -> None:
    # PageSize 1 to 50, PageNumber 1 to 100000, and the documented choices: bulk sends nothing else (the service
    # refuses it; the simulator's table as its reading of the reference) and refuses none of them.
    try:
        check_listing({name: value})
        refused = None
    except Reject as exc:
        refused = exc.code
    assert refused == (None if documented else "MalformedParam")
    listing = resolve("describe-live-user-domains")
    if documented:
        assert listing.validate({name: value}) == {name: value}
    else:
        with pytest.raises(InvalidParams, match=name) as mine:
            listing.validate({name: value})
        assert mine.value.code == "MalformedParam"


async def test_a_listing_row_outside_the_documented_values_is_refused_before_sending(tmp_path: Path) -> None:
    # Through the input's quick path for plain CSV values too: the row is invalid, and never sent.
    rows = tmp_path / "listing.csv"
    rows.write_text("DomainName,PageSize,DomainStatus\nexample,51,online\nexample.net,50,Online\nexample.org,50,online\n")
    async with simulator() as sim:
        result = await run_engine(sim, rows, action="DescribeLiveUserDomains", overrides={})
        answers = sim.stats()["calls"]["DescribeLiveUserDomains"]
    assert result.counts["invalid"] == 2 and result.counts["done"] == 1
    assert answers == {"OK": 1}
