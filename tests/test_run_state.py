"""A run's own files: where they live, whose run they are, what a bad row leaves in them (issue 19, items 12-15)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bulk.checkpoint import Checkpoint, RowOutcome, RowState
from bulk.inputs import Row
from bulk.sim import Simulator

ADD = "AddLiveSnapshotNotifyConfig"
URL = "https://cb.example.com/snap"
KEY = "abcdEFGH12345678abcd"


async def bulk(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bulk", *args, env=env or dict(os.environ),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def add_args(src: Path, sim: Simulator, *more: str) -> list[str]:
    return ["run", str(src), "--action", ADD, "--endpoint", sim.url, "--quiet", *more]


async def test_a_shifted_row_leaves_no_key_in_the_checkpoint_report_or_failures_file(tmp_path: Path,
                                                                                   sim: Simulator) -> None:
    """Item 14: a cell missing before the key moves it into a column that is not secret."""
    src = tmp_path / "d.csv"
    src.write_text("DomainName,NotifyUrl,NotifyReqAuth,NotifyAuthKey\n"
                   f"a.example.com,{URL},yes,{KEY}\n"
                   f"{KEY},{URL},yes,\n"                      # the domain cell left out: the key is the domain
                   f"b.example.com,{URL},{KEY},yes\n"         # NotifyReqAuth left out
                   f"{URL},yes,{KEY},\n")                     # the domain cell left out, and the key shifted
    ckpt, report = tmp_path / "state" / "run.ckpt", tmp_path / "report.csv"
    code, out, err = await bulk(*add_args(src, sim, "--checkpoint", str(ckpt), "--report", str(report)))
    assert code == 1, err
    assert sim.notify_configs["a.example.com"]["NotifyAuthKey"] == KEY  # the valid row went out, key and all
    code, shown, _ = await bulk("report", str(ckpt), "--format", "jsonl")
    assert code == 0 and shown.count('"invalid"') == 3
    files = [p for p in (tmp_path / "state").iterdir() if p.is_file()] + [report]
    assert any(p.name.endswith(".failures.csv") for p in files)
    failures = next(p for p in files if p.name.endswith(".failures.csv")).read_text()
    assert failures.count("fp:") == 3, failures  # each key in a public cell shows as its fingerprint
    for text in (out, err, shown, *(p.read_bytes().decode("utf-8", "replace") for p in files)):
        assert KEY not in text


async def test_the_failures_file_is_removed_once_its_rows_are_done(tmp_path: Path, sim: Simulator) -> None:
    """Item 15: a stale failures file listed a domain that is done since."""
    sim.notify_configs["b.example.com"] = {"DomainName": "b.example.com", "NotifyUrl": URL + "/other",
                                           "NotifyReqAuth": "no", "NotifyAuthKey": ""}
    src = tmp_path / "d.csv"
    src.write_text(f"DomainName,NotifyUrl\na.example.com,{URL}\nb.example.com,{URL}\n")
    ckpt = tmp_path / "run.ckpt"
    failures = tmp_path / "run.failures.csv"
    code, _, err = await bulk(*add_args(src, sim, "--checkpoint", str(ckpt)))
    assert code == 1, err
    assert failures.read_text().splitlines() == ["DomainName,NotifyUrl", f"b.example.com,{URL}"]
    del sim.notify_configs["b.example.com"]  # the other team's config is gone: the row can be applied
    code, _, err = await bulk(*add_args(src, sim, "--checkpoint", str(ckpt), "--retry-failed"))
    assert code == 0, err
    assert not failures.exists()


async def test_the_failures_file_lists_no_duplicate_of_a_domain_done(tmp_path: Path, sim: Simulator) -> None:
    """Item 15: a domain listed twice is done by its first row; its second is nothing to feed back."""
    sim.notify_configs["c.example.com"] = {"DomainName": "c.example.com", "NotifyUrl": URL + "/other",
                                           "NotifyReqAuth": "no", "NotifyAuthKey": ""}
    src = tmp_path / "d.csv"
    src.write_text(f"DomainName,NotifyUrl\na.example.com,{URL}\nA.example.com,{URL}\nc.example.com,{URL}\n"
                   f"b.example.com,notaurl\nb.example.com,{URL}\n")
    ckpt = tmp_path / "run.ckpt"
    code, _, err = await bulk(*add_args(src, sim, "--checkpoint", str(ckpt)))
    assert code == 1, err
    # c failed (another config), b's rows are both invalid (which one was meant is unknown): they stay listed.
    assert (tmp_path / "run.failures.csv").read_text().splitlines() == [
        "DomainName,NotifyUrl", f"c.example.com,{URL}", "b.example.com,notaurl", f"b.example.com,{URL}"]


def test_a_claim_is_committed_with_synchronous_full_and_results_are_not(tmp_path: Path) -> None:
    """Item 16: under NORMAL a power cut can take back a committed claim; its row would go out again unread."""
    statements: list[str] = []
    with Checkpoint.open(tmp_path / "c.ckpt") as ckpt:
        ckpt.add_rows(Row(i, f"d{i}.example.com", {}, {}) for i in (1, 2, 3))
        ckpt._db.set_trace_callback(statements.append)
        ckpt.claim([1, 2])
        ckpt.record(RowOutcome(RowState.DONE, ADD, line=1, attempts=1, reached=True))
        ckpt.flush()
        ckpt._db.set_trace_callback(None)
    said = [s.split()[0].upper() + (" " + s.split()[1] if s.upper().startswith("PRAGMA") else "") for s in statements]
    claim, commit = said.index("UPDATE"), said.index("COMMIT")
    assert "PRAGMA synchronous=FULL" in said[:claim] and "PRAGMA synchronous=NORMAL" in said[commit:]
    result = said.index("UPDATE", commit)
    assert said[commit:result].count("PRAGMA synchronous=NORMAL") == 1 and "PRAGMA synchronous=FULL" not in said[commit:]
