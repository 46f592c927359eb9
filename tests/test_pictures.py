"""The pictures: `bulk report --html` from a real run's checkpoint, and the receiver's /drain.html (issue 23 item 4)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import stat
import sys
from pathlib import Path

import aiohttp
import pytest
from support import bulk, domains_csv, run_engine, simulator

from bulk.callbacks import Receiver, sign
from bulk.callbacks.series import AcceptSeries, Snapshot, drain_page
from bulk.charts import MissingExtra
from bulk.checkpoint import Checkpoint
from bulk.keys import write_keys_file
from bulk.report_html import render_html, write_html

SECRET = "LeakCheckKey0123456789abcdEF"
HOSTILE = "<img src=x onerror=alert(1)>.example.com"
OLD, NEW = "keys-2026-10", "keys-2026-11"


def self_contained(page: str) -> None:
    """Nothing in ``page`` is fetched or run: no script, no stylesheet link, no remote source."""
    assert not re.search(r"<(script|link|iframe|object|embed)\b", page, re.I)
    assert not re.search(r"""\b(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page, re.I)


async def a_run(tmp_path: Path, *, qps: float = 1000) -> Path:
    """A real run against the simulator: five rows the service refuses, one invalid row named to inject HTML."""
    csv = domains_csv(tmp_path / "d.csv", 30, extra=[f"{HOSTILE}\n"])
    ckpt = tmp_path / "d.ckpt"
    async with simulator(missing_domains=("d000[0-4].example.com",)) as sim:
        await run_engine(sim, csv, checkpoint=ckpt, qps=qps)
    # A message as an older bulk might have stored it, with a key after its parameter's name.
    with sqlite3.connect(ckpt) as db:
        db.execute("UPDATE rows SET message = ? WHERE line = 3", (f"refused NotifyAuthKey={SECRET} as given",))
    return ckpt


async def test_the_html_report_draws_the_run_and_lists_its_failed_rows(tmp_path: Path) -> None:
    ckpt = await a_run(tmp_path, qps=40)  # 55 calls: two seconds at least
    out = tmp_path / "report.html"
    with Checkpoint.open_readonly(ckpt) as c:
        assert write_html(c, out) == 6
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    page = out.read_text()
    self_contained(page)
    assert page.count("<svg") == 1 and "</svg>" in page
    for title in ("Calls per second", "Answers by code", "Latency (ms)", "Rows finished per second",
                  "quota per account and operation", "InvalidDomain.NotFound"):
        assert title in page
    for line in range(2, 7):
        assert f"d000{line - 2}.example.com" in page
    assert "Rows that need attention (6)" in page
    assert SECRET not in page and "NotifyAuthKey=******" in page
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


async def test_without_a_timeline_the_page_says_so(tmp_path: Path) -> None:
    ckpt = await a_run(tmp_path)
    with sqlite3.connect(ckpt) as db:
        db.execute("DROP TABLE timeline")  # a checkpoint of a bulk that kept none
    with Checkpoint.open_readonly(ckpt) as c:
        page, listed = render_html(c)
    assert listed == 6 and "<svg" not in page and "No timeline" in page


async def test_the_cli_writes_the_page_and_names_the_extra_when_matplotlib_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = await a_run(tmp_path)
    out = tmp_path / "report.html"
    code, stdout, err = await bulk("report", str(ckpt), "--html", str(out))
    assert code == 0, err
    assert stdout == "" and "<svg" in out.read_text()
    # A matplotlib that cannot be imported, first on the path: the same command in process (a new interpreter for
    # it alone cost 0.8 s of CPU; what a child process adds is proved by the run above).
    from typer.testing import CliRunner

    from bulk.cli import app

    fake = tmp_path / "site" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    monkeypatch.syspath_prepend(str(fake.parent))
    for name in [name for name in sys.modules if name == "matplotlib" or name.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    refused = await asyncio.to_thread(CliRunner().invoke, app, ["report", str(ckpt), "--html",
                                                                str(tmp_path / "other.html")])
    assert refused.exit_code == 2 and "bulk[report]" in refused.stderr, refused.output
    assert not (tmp_path / "other.html").exists()


def test_missing_matplotlib_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    from bulk.charts import draw

    with pytest.raises(MissingExtra, match=re.escape("pip install 'bulk[report]'")) as raised:
        draw(lambda axes: None, rows=1)
    assert raised.value.exit_code == 2


def test_the_series_keeps_per_minute_buckets_of_the_last_hours() -> None:
    series = AcceptSeries(hours=1)
    start = 1_800_000_000 // 60 * 60
    for minute in range(200):
        for _ in range(minute % 3 + 1):
            series.add(OLD, now=start + minute * 60 + 5)
    series.add(NEW, now=start + 199 * 60)
    snapshot = series.snapshot(now=start + 199 * 60 + 30)
    kept = snapshot.generations
    assert len(kept[OLD]) == 60 and kept[OLD][0] == (start + 140 * 60, 140 % 3 + 1)
    assert kept[OLD][-1] == (start + 199 * 60, 199 % 3 + 1) and kept[NEW] == [(start + 199 * 60, 1)]


async def test_the_drain_page_without_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    status, page = await drain_page(Snapshot(1_800_000_100, {OLD: [(1_800_000_000, 3)]}))
    assert status == 501 and "bulk[report]" in page


async def test_the_receiver_serves_the_drain_page(tmp_path: Path) -> None:
    keys = {"a.example.com": "aOldKey0123456789abcdef", "b.example.com": "bOldKey0123456789abcdef"}
    new = {d: k.replace("Old", "New") for d, k in keys.items()}
    write_keys_file(tmp_path / f"{OLD}.csv", keys)
    now = [1_800_000_000.0]
    receiver = Receiver([tmp_path], clock=lambda: now[0], poll_interval=0)
    async with receiver, aiohttp.ClientSession() as session:

        async def callback(domain: str, key: str) -> None:
            async with session.post(f"{receiver.url}/cb", data=b'{"DomainName": "%s"}' % domain.encode(),
                                    headers=sign("127.0.0.1", key, now=lambda: now[0])) as resp:
                assert resp.status == 200

        for _ in range(3):
            await callback("a.example.com", keys["a.example.com"])
            now[0] += 60
        write_keys_file(tmp_path / f"{NEW}.csv", new)
        assert await receiver.reload()
        for _ in range(4):
            await callback("b.example.com", new["b.example.com"])
            now[0] += 60
        async with session.get(f"{receiver.admin_url}/drain.html") as resp:
            assert resp.status == 200 and resp.content_type == "text/html"
            page = await resp.text()
    self_contained(page)
    assert page.count("<svg") == 1 and "Accepted callbacks per minute" in page
    assert re.search(rf"<td>{OLD}</td><td class=n>3</td>", page)
    assert re.search(rf"<td>{NEW}</td><td class=n>4</td>", page)
    assert all(k not in page for k in (*keys.values(), *new.values()))
