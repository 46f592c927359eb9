"""CSV files bulk writes are safe to open in a spreadsheet: no cell starts a formula (issue 20, finding 10)."""

from __future__ import annotations

import csv
from pathlib import Path

from support import bulk

from bulk.actions import resolve
from bulk.inputs import BadRow, Format, Row, read_rows
from bulk.paths import default_checkpoint, failures_path
from bulk.report import spreadsheet_safe
from bulk.sim import Simulator

URL = "https://cb.example.com/snap"
HYPERLINK = '=HYPERLINK("http://evil.example/steal","click me")'
SUM = "@SUM(1+1)*cmd|' /C calc'!A0"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")



def cells(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_a_cell_that_would_start_a_formula_is_quoted() -> None:
    for cell in (HYPERLINK, SUM, "+1", "-1", "\tx", "\rx"):
        assert spreadsheet_safe(cell) == "'" + cell
    for cell in ("a.example.com", "https://x", "", "'=already", 3, None):
        assert spreadsheet_safe(cell) == cell


async def test_the_report_and_failures_file_hold_no_formula(tmp_path: Path, sim: Simulator) -> None:
    src = tmp_path / "d.csv"
    with src.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerows([["DomainName", "NotifyUrl"], ["a.example.com", URL], [HYPERLINK, URL], [SUM, URL],
                          ["c.example.com", "+cmd|' /C calc'!A0"], ["b.example.com", URL]])
    report = tmp_path / "report.csv"
    code, _, err = await bulk("run", str(src), "--action", "AddLiveSnapshotNotifyConfig", "--endpoint", sim.url,
                              "--quiet", "--report", str(report))
    assert code == 1, err
    rows = cells(report)
    by_line = {int(r["line"]): r for r in rows}
    assert by_line[3]["domain"] == "'" + HYPERLINK and by_line[4]["domain"] == "'" + SUM
    assert [by_line[n]["outcome"] for n in (2, 3, 4, 5, 6)] == ["done", "invalid", "invalid", "invalid", "done"]
    assert all(not v.startswith(FORMULA_START) for r in rows for v in r.values()), rows
    ckpt = default_checkpoint(src, resolve("AddLiveSnapshotNotifyConfig"))
    code, out, err = await bulk("report", str(ckpt))
    assert code == 0 and "'" + HYPERLINK.replace('"', '""') in out, out + err

    failures = failures_path(ckpt, Format.CSV)
    failed = cells(failures)
    assert [r["DomainName"] for r in failed] == ["'" + HYPERLINK, "'" + SUM, "c.example.com"]
    assert failed[2]["NotifyUrl"] == "'+cmd|' /C calc'!A0"
    assert all(not v.startswith(FORMULA_START) for r in failed for v in r.values()), failed
    # Fed back, they are still invalid rows: nothing in them is sent.
    again = list(read_rows(failures, resolve("AddLiveSnapshotNotifyConfig")))
    assert len(again) == 3 and all(isinstance(i, BadRow) for i in again)


async def test_valid_rows_of_a_failures_file_read_back_as_they_were(tmp_path: Path, sim: Simulator) -> None:
    """A row the service refused had valid cells: they are written as read, to be sent again."""
    sim.notify_configs["a.example.com"] = {"DomainName": "a.example.com", "NotifyUrl": URL + "/old",
                                           "NotifyReqAuth": "no", "NotifyAuthKey": ""}
    src = tmp_path / "d.csv"
    src.write_text(f"DomainName,NotifyUrl\na.example.com,{URL}\n{SUM},{URL}\n")
    code, _, err = await bulk("run", str(src), "--action", "AddLiveSnapshotNotifyConfig", "--endpoint", sim.url,
                              "--quiet", "--no-backup")
    assert code == 1, err
    failures = failures_path(default_checkpoint(src, resolve("AddLiveSnapshotNotifyConfig")), Format.CSV)
    back = list(read_rows(failures, resolve("AddLiveSnapshotNotifyConfig")))
    assert isinstance(back[0], Row) and back[0].params == {"DomainName": "a.example.com", "NotifyUrl": URL}
    assert isinstance(back[1], BadRow) and back[1].raw and back[1].raw["DomainName"] == "'" + SUM
