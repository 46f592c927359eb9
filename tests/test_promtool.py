"""Prometheus' own checker on what bulk exposes and ships: ``promtool`` (Debian's prometheus), in ``make test-e2e``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest
from support import domains_csv, run_engine, simulator

from bulk.callbacks import Receiver, sign
from bulk.keys import write_keys_file
from bulk.textfile import RunTextfile

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """promtool's answer; fails the test (not skips it) when it is missing: `make test-e2e` installs it."""
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is not installed: run `make test-e2e`, which installs Debian's prometheus package")
    return subprocess.run([tool, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False)


def assert_clean(answer: subprocess.CompletedProcess[str]) -> None:
    """Exit 0 and no lint finding (promtool prints findings, one a line, and exits non-zero)."""
    assert answer.returncode == 0 and not answer.stdout.strip() and not answer.stderr.strip(), (
        answer.returncode, answer.stdout, answer.stderr)


async def test_promtool_accepts_the_receivers_metrics(tmp_path: Path) -> None:
    write_keys_file(tmp_path / "keys-2026-10.csv", {"a.example.com": "aOldKey0123456789abcdef"})
    write_keys_file(tmp_path / "keys-2026-11.csv", {"a.example.com": "aNewKey0123456789abcdef"})
    (tmp_path / "keys-2026-12.csv").write_text("DomainName,CallbackAuthKey\na.example.com,short\n")
    tmp_path.joinpath("keys-2026-12.csv").chmod(0o600)
    body = b'{"DomainName": "a.example.com"}'
    async with Receiver([tmp_path]) as receiver, aiohttp.ClientSession() as session:
        for key in ("aOldKey0123456789abcdef", "aNewKey0123456789abcdef", "aBadKey0123456789abcdef"):
            async with session.post(f"{receiver.url}/cb", data=body, headers=sign("127.0.0.1", key)) as resp:
                await resp.read()
        async with session.get(f"{receiver.admin_url}/metrics") as resp:
            text = await resp.text()
    # Every family has samples here (accepted, rejected, a keys file left out), so promtool sees each one.
    assert 'reason="malformed"' in text and 'reason="signature_matches_no_key"' in text
    assert_clean(promtool("check", "metrics", stdin=text))


async def test_promtool_accepts_a_runs_textfile(tmp_path: Path) -> None:
    async with simulator(error_rate=0.2, fault_kinds=("throttle",)) as sim:
        result = await run_engine(sim, domains_csv(tmp_path / "d.csv", 10), qps=1000)
    textfile = RunTextfile(tmp_path / "bulk-run.prom", command="run")
    textfile.result = result
    textfile.write(result.exit_code)
    text = textfile.path.read_text()
    assert 'code="Throttling' in text
    assert_clean(promtool("check", "metrics", stdin=text))


def test_promtool_accepts_the_alert_rules_and_their_unit_tests() -> None:
    checked = promtool("check", "rules", str(ROOT / "docs" / "alerts.yml"))
    assert checked.returncode == 0 and "SUCCESS: 4 rules found" in checked.stdout, checked
    tested = promtool("test", "rules", str(ROOT / "tests" / "promtool" / "alerts.test.yml"))
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested
