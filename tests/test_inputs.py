"""Reading domain lists: formats, encodings, bad rows by line, bounded memory, no secret in messages."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from bulk.actions import resolve
from bulk.inputs import (
    BadRow,
    Format,
    InputError,
    Row,
    detect_format,
    parse_overrides,
    read_rows,
    validate_file,
    write_rows,
)

ADD = resolve("AddLiveSnapshotNotifyConfig")
SET = resolve("SetSnapshotCallbackAuth")
URL = "https://cb.example.com/snap"
SECRET = "SeCrEtKey1234567890abcd"


def lines_of(items: list[Row | BadRow]) -> dict[int, str]:
    return {i.line: ("ok" if isinstance(i, Row) else i.reason) for i in items}


def test_csv_with_bom_crlf_and_quoted_fields(tmp_path: Path) -> None:
    src = tmp_path / "d.csv"
    src.write_bytes(
        "\ufeffDomainName,NotifyUrl\r\n"
        "a.example.com,\"https://cb.example.com/x?a=1,b=2\"\r\n"
        "\"b.example.com\",\"https://cb.example.com/multi\nline\"\r\n"
        "c.example.com,https://cb.example.com/é\r\n".encode()
    )
    items = list(read_rows(src, ADD))
    assert [i.line for i in items] == [2, 3, 5]
    assert items[0].params == {"DomainName": "a.example.com", "NotifyUrl": "https://cb.example.com/x?a=1,b=2"}
    assert isinstance(items[1], BadRow) and "NotifyUrl" in items[1].reason  # a URL with a newline in it
    assert items[2].params["NotifyUrl"].endswith("é")


def test_domain_only_csv_with_set_and_duplicates(tmp_path: Path) -> None:
    src = tmp_path / "d.csv"
    src.write_text("DomainName\na.example.com\n\nb.example.com\nA.Example.com\nnot a domain\n")
    items = list(read_rows(src, ADD, overrides={"NotifyUrl": URL}))
    assert lines_of(items) == {2: "ok", 4: "ok", 5: "DomainName listed twice (first at line 2)",
                               6: "DomainName is not a valid domain name"}
    assert items[0].params == {"DomainName": "a.example.com", "NotifyUrl": URL}
    assert items[0].raw == {"DomainName": "a.example.com"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("NotifyUrl\nhttps://x.example.com\n", "no DomainName"),
        ("DomainName,NotifyURL\na.example.com,x\n", "not parameters"),
        ("DomainName,NotifyUrl\na.example.com,https://x.example.com\n", "both"),
    ],
)
def test_whole_file_problems(tmp_path: Path, text: str, message: str) -> None:
    src = tmp_path / "d.csv"
    src.write_text(text)
    with pytest.raises(InputError, match=message):
        list(read_rows(src, ADD, overrides={"NotifyUrl": URL}))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        list(read_rows(tmp_path / "nope.csv", ADD))


def test_jsonl_rows(tmp_path: Path) -> None:
    src = tmp_path / "d.jsonl"
    src.write_text(
        '{"DomainName": "a.example.com", "CallbackReqAuth": "yes", "CallbackAuthKey": "%s"}\n'
        "{broken\n"
        "[1, 2]\n"
        '{"DomainName": "b.example.com", "CallbackReqAuth": "yes", "CallbackAuthKey": 12345678901234567}\n'
        '{"DomainName": "c.example.com", "CallbackReqAuth": "maybe", "CallbackAuthKey": "%s"}\n'
        '{"DomainName": "d.example.com", "CallbackReqAuth": "yes", "CallbackAuthKey": "short"}\n'
        '{"DomainName": "e.example.com", "CallbackReqAuth": "yes", "Extra": "x", "CallbackAuthKey": "%s"}\n'
        % (SECRET, SECRET, SECRET)
    )
    items = list(read_rows(src, SET))
    reasons = lines_of(items)
    assert reasons[1] == "ok" and items[0].params["CallbackAuthKey"] == SECRET
    assert reasons[2] == "not valid JSON" and reasons[3] == "not a JSON object"
    assert "must be a string" in reasons[4] and "yes or no" in reasons[5]
    assert "16 to 32" in reasons[6] and "Extra" in reasons[7]
    assert all(SECRET not in r and "short" not in r for r in reasons.values())


def test_plain_list_with_comments(tmp_path: Path) -> None:
    src = tmp_path / "d.txt"
    src.write_text("# fleet\na.example.com\n\n  b.example.com  \n")
    assert detect_format(src) is Format.LIST
    items = list(read_rows(src, resolve("DescribeLiveSnapshotNotifyConfig")))
    assert [(i.line, i.domain) for i in items] == [(2, "a.example.com"), (4, "b.example.com")]


def test_overrides(tmp_path: Path) -> None:
    assert parse_overrides(["NotifyUrl=https://x.example.com/a=b"], ADD) == {"NotifyUrl": "https://x.example.com/a=b"}
    for bad, message in (("NotifyUrl", "Name=Value"), ("Nope=1", "no such parameter"), ("NotifyUrl=ftp://x", "URL")):
        with pytest.raises(InputError, match=message):
            parse_overrides([bad], ADD)
    with pytest.raises(InputError) as info:
        parse_overrides(["NotifyAuthKey=" + SECRET + "!"], ADD)
    assert SECRET not in str(info.value) and "fp:" in str(info.value)


@pytest.mark.parametrize("fmt", list(Format))
def test_write_rows_round_trips(tmp_path: Path, fmt: Format) -> None:
    ext = {Format.CSV: ".csv", Format.JSONL: ".jsonl", Format.LIST: ".txt"}[fmt]
    rows = [{"DomainName": "a.example.com"}, {"DomainName": "b.example.com"}]
    path = tmp_path / f"out{ext}"
    write_rows(path, fmt, rows)
    back = [i for i in read_rows(path, resolve("DeleteSnapshotCallbackAuth"))]
    assert [i.raw for i in back] == rows


def test_streams_in_bounded_memory(tmp_path: Path) -> None:
    src = tmp_path / "big.csv"
    with src.open("w") as f:
        f.write("DomainName\n")
        for i in range(50_000):
            f.write(f"d{i:06d}.example.com\n")
    tracemalloc.start()
    summary = validate_file(src, ADD, overrides={"NotifyUrl": URL})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert summary.valid == 50_000 and summary.bad_count == 0
    # Only the 8-byte digests for duplicate detection grow with the file, not the rows.
    assert peak < 12 * 1024 * 1024, peak


def test_a_line_that_is_not_utf8_is_one_bad_row(tmp_path: Path) -> None:
    src = tmp_path / "d.csv"
    src.write_bytes(b"DomainName\na.example.com\nb\xff\xfe.example.com\nc.example.com\n")
    assert lines_of(list(read_rows(src, ADD, overrides={"NotifyUrl": URL}))) == {
        2: "ok", 3: "not UTF-8 text", 4: "ok",
    }
    src.write_bytes(b"Domain\xffName\na.example.com\n")
    with pytest.raises(InputError, match="UTF-8"):
        list(read_rows(src, ADD, overrides={"NotifyUrl": URL}))
