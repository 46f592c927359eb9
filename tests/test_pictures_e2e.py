"""The pictures in a real browser: headless Chromium opens the run report and the drain page and draws the charts.

`make test-e2e` only (marker ``e2e``): it needs Debian's ``chromium``. With ``BULK_SCREENSHOTS=docs/img``
the screenshots are kept there (docs/report.md shows them).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import aiohttp
import pytest
from support import domains_csv, run_engine, simulator

from bulk.callbacks import Receiver, sign
from bulk.checkpoint import Checkpoint
from bulk.keys import write_keys_file
from bulk.report_html import write_html

pytestmark = pytest.mark.e2e

OLD, NEW = "keys-2026-10", "keys-2026-11"
#: the OK answers' and rows' green (bulk.report_html), and matplotlib's first line colour: on screen only if drawn
GREEN, BLUE = (0x4C, 0x9A, 0x2A), (0x1F, 0x77, 0xB4)


def chromium() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if found is None:
        pytest.fail("these tests need Debian's chromium: apt-get install -y --no-install-recommends chromium")
    return found


async def browse(url: str, tmp_path: Path, *, shot: Path, height: int = 1800) -> str:
    """Chromium's DOM of ``url`` once loaded, and its screenshot at ``shot``."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chromium'}", f"--window-size=1200,{height}", "--hide-scrollbars"]
    dom = await asyncio.create_subprocess_exec(chromium(), *flags, "--dump-dom", url,
                                               stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    out, _ = await asyncio.wait_for(dom.communicate(), 120)
    assert dom.returncode == 0
    pic = await asyncio.create_subprocess_exec(chromium(), *flags, f"--screenshot={shot}", url,
                                               stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    await asyncio.wait_for(pic.wait(), 120)
    assert pic.returncode == 0 and shot.is_file()
    keep = os.environ.get("BULK_SCREENSHOTS")
    if keep:
        shutil.copyfile(shot, Path(keep) / shot.name)
    return out.decode()


def colours(png: Path) -> set[tuple[int, int, int]]:
    from PIL import Image

    with Image.open(png) as image:
        return {rgb for _, rgb in image.convert("RGB").getcolors(maxcolors=1 << 20) or []}


def drawn(dom: str, png: Path, *, charts: int, colour: tuple[int, int, int]) -> None:
    """The browser parsed the charts as SVG and painted them: paths in the DOM, the charts' colours on screen."""
    assert len(re.findall(r"<svg\b", dom)) == charts
    assert len(re.findall(r"<path\b", dom)) > 20
    seen = colours(png)
    assert len(seen) > 50  # not a blank page
    assert any(all(abs(a - b) <= 8 for a, b in zip(rgb, colour, strict=True)) for rgb in seen)


async def test_chromium_draws_the_run_report(tmp_path: Path) -> None:
    csv = domains_csv(tmp_path / "domains.csv", 160)
    ckpt = tmp_path / "domains.ckpt"
    # The service allows 30 calls a second, the run is told 40: throttling episodes, and the pace coming back.
    async with simulator(qps=30, latency_ms=40, latency_jitter_ms=15, error_rate=0.03,
                         missing_domains=("d00[0-1][0-3].example.com",)) as sim:
        await run_engine(sim, csv, checkpoint=ckpt, qps=40)
    page = tmp_path / "report.html"
    with Checkpoint.open_readonly(ckpt) as c:
        write_html(c, page)
    dom = await browse(page.as_uri(), tmp_path, shot=tmp_path / "report.png")
    drawn(dom, tmp_path / "report.png", charts=1, colour=GREEN)
    assert "Calls per second" in dom and "d0000.example.com" in dom


async def test_chromium_draws_the_drain_page(tmp_path: Path) -> None:
    domains = [f"d{i:02d}.example.com" for i in range(20)]
    old = {d: f"old{i:02d}Key0123456789abcdef" for i, d in enumerate(domains)}
    new = {d: f"new{i:02d}Key0123456789abcdef" for i, d in enumerate(domains)}
    write_keys_file(tmp_path / f"{OLD}.csv", old)
    now = [1_800_000_000.0]
    receiver = Receiver([tmp_path], clock=lambda: now[0], poll_interval=0)
    async with receiver, aiohttp.ClientSession() as session:

        async def callback(domain: str, key: str) -> None:
            async with session.post(f"{receiver.url}/cb", data=b'{"DomainName": "%s"}' % domain.encode(),
                                    headers=sign("127.0.0.1", key, now=lambda: now[0])) as resp:
                assert resp.status == 200

        # An hour on the old keys; then the new ones load and the streams move over, one a minute or so.
        for minute in range(60):
            for d in domains[: 10 + minute % 5]:
                await callback(d, old[d])
            now[0] += 60
        write_keys_file(tmp_path / f"{NEW}.csv", new)
        assert await receiver.reload()
        for minute in range(60):
            moved = min(len(domains), minute // 2)
            for d in domains[:moved]:
                await callback(d, new[d])
            for d in domains[moved:14]:
                await callback(d, old[d])
            now[0] += 60
        now[0] -= 30  # half way through the last minute with callbacks
        dom = await browse(f"{receiver.admin_url}/drain.html", tmp_path, shot=tmp_path / "drain.png", height=560)
    drawn(dom, tmp_path / "drain.png", charts=1, colour=BLUE)
    assert OLD in dom and NEW in dom
