"""A run's own files: where they live, whose run they are, what a bad row leaves in them (issue 19, items 12-15)."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

from conftest import TEST_AK_ID, TEST_AK_SECRET
from support import bulk

from bulk.checkpoint import Checkpoint, RowOutcome, RowState
from bulk.credentials import fingerprint
from bulk.inputs import Format, Row
from bulk.paths import (
    failures_path,
    plan_run_checkpoint,
    rollback_checkpoint,
    verify_checkpoint,
)
from bulk.sim import SimConfig, Simulator

ADD = "AddLiveSnapshotNotifyConfig"
URL = "https://cb.example.com/snap"
KEY = "abcdEFGH12345678abcd"


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
        ckpt.claim([(1, False), (2, False)])
        ckpt.record(RowOutcome(RowState.DONE, ADD, line=1, attempts=1, reached=True))
        ckpt.flush()
        ckpt._db.set_trace_callback(None)
    said = [s.split()[0].upper() + (" " + s.split()[1] if s.upper().startswith("PRAGMA") else "") for s in statements]
    claim, commit = said.index("UPDATE"), said.index("COMMIT")
    assert "PRAGMA synchronous=FULL" in said[:claim] and "PRAGMA synchronous=NORMAL" in said[commit:]
    result = said.index("UPDATE", commit)
    assert said[commit:result].count("PRAGMA synchronous=NORMAL") == 1
    assert "PRAGMA synchronous=FULL" not in said[commit:]


def with_key(key_id: str, secret: str) -> dict[str, str]:
    return {**os.environ, "ALIBABA_CLOUD_ACCESS_KEY_ID": key_id, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": secret}


async def test_a_resume_against_another_endpoint_or_account_is_refused(tmp_path: Path) -> None:
    """Item 13: a rehearsal's checkpoint resumed against another service would mix two fleets in one record."""
    other_id, other_secret = "LTAIotherAccessKey", "otherSecretValue0123456789abcdef"
    keys = {TEST_AK_ID: TEST_AK_SECRET, other_id: other_secret}
    src = tmp_path / "d.csv"
    src.write_text(f"DomainName,NotifyUrl\na.example.com,{URL}\nb.example.com,{URL}\n")
    ckpt = tmp_path / "run.ckpt"
    async with Simulator(SimConfig(access_keys=keys)) as first, Simulator(SimConfig(access_keys=keys)) as second:
        first.notify_configs["b.example.com"] = {"DomainName": "b.example.com", "NotifyUrl": URL + "/other",
                                                 "NotifyReqAuth": "no", "NotifyAuthKey": ""}
        code, _, err = await bulk(*add_args(src, first, "--checkpoint", str(ckpt)))
        assert code == 1, err  # b failed: a resume has work to do
        code, _, err = await bulk(*add_args(src, second, "--checkpoint", str(ckpt), "--retry-failed"))
        assert code == 2, err
        assert first.url in err and second.url in err, err
        code, _, err = await bulk(*add_args(src, first, "--checkpoint", str(ckpt), "--retry-failed"),
                                  env=with_key(other_id, other_secret))
        assert code == 2, err
        assert fingerprint(TEST_AK_ID) in err and fingerprint(other_id) in err, err
        assert other_secret not in err and TEST_AK_SECRET not in err
        code, _, err = await bulk(*add_args(src, first, "--checkpoint", str(ckpt), "--retry-failed", "--region",
                                            "cn-beijing"))
        assert code == 2 and "cn-shanghai" in err and "cn-beijing" in err, err
        assert second.stats()["total"] == 0
        calls = first.stats()["total"]
        del first.notify_configs["b.example.com"]
        code, _, err = await bulk(*add_args(src, first, "--checkpoint", str(ckpt), "--retry-failed"))
        assert code == 0, err  # the run's own endpoint and account resume it
        assert first.stats()["total"] > calls


class _Sink:
    """A proxy that answers nothing: whatever would leave the machine through HTTPS_PROXY is caught here."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.seen.append(await reader.readline())
        writer.close()


async def test_verify_rollback_and_a_plan_go_to_the_endpoint_the_run_recorded(tmp_path: Path, sim: Simulator) -> None:
    """Item 13: after a rehearsal against the simulator, a bare `bulk verify CK` must never go to production."""
    sink = _Sink()
    server = await asyncio.start_server(sink.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # The default endpoint is https://: any call to it goes to the sink, never off the machine.
    env = {**os.environ, "HTTPS_PROXY": f"http://127.0.0.1:{port}", "NO_PROXY": ""}
    src = tmp_path / "d.csv"
    src.write_text(f"DomainName,NotifyUrl\na.example.com,{URL}\nb.example.com,{URL}\n")
    ckpt = tmp_path / "run.ckpt"
    bare = ("--max-attempts", "1", "--timeout", "2", "--quiet")
    try:
        code, _, err = await bulk(*add_args(src, sim, "--checkpoint", str(ckpt), "--region", "cn-beijing"), env=env)
        assert code == 0, err
        reads = sim.stats()["total"]
        code, out, err = await bulk("verify", str(ckpt), *bare, env=env)
        assert code == 0, out + err
        assert sim.stats()["total"] > reads and "2 in sync" in out
        code, out, err = await bulk("rollback", str(ckpt), *bare, env=env)
        assert code == 0, out + err
        assert sim.notify_configs == {}
        plan = tmp_path / "p.plan.jsonl"
        code, out, err = await bulk("plan", str(src), "--action", ADD, "--endpoint", sim.url, "--region",
                                    "cn-beijing", "-o", str(plan), "--quiet", env=env)
        assert code == 0, out + err
        code, out, err = await bulk("run", "--plan", str(plan), *bare, env=env)
        assert code == 0, out + err
        assert set(sim.notify_configs) == {"a.example.com", "b.example.com"}
        for each in (verify_checkpoint(ckpt), rollback_checkpoint(ckpt), plan_run_checkpoint(plan)):
            with Checkpoint.open_readonly(each) as c:
                meta = c.meta() or {}
            assert (meta["endpoint"], meta["region"]) == (sim.url, "cn-beijing"), each
    finally:
        server.close()
        await server.wait_closed()
    assert sink.seen == []


async def test_a_rotation_leaves_nothing_but_its_keys_file_in_the_keys_directory(tmp_path: Path,
                                                                                  state_dir: Path) -> None:
    """Item 12: its failures file (a .csv) in the keys directory made the receiver refuse the whole set."""
    fleet = tmp_path / "fleet.txt"
    fleet.write_text("a.example.com\ngone.example.com\nb.example.com\n")
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    keys = keys_dir / "keys-2026-11.csv"
    config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, missing_domains=("gone.*",))
    async with Simulator(config) as sim:
        code, _, err = await bulk("rotate", "--yes", str(fleet), "--keys-out", str(keys), "--endpoint", sim.url,
                                  "--quiet")
        assert code == 1, err  # the missing domain failed: there is a failures file
        assert set(sim.callback_auth) == {"a.example.com", "b.example.com"}
        assert sorted(p.name for p in keys_dir.iterdir()) == ["keys-2026-11.csv"]
        ckpt = (state_dir / "keys-2026-11.csv.set-snapshot-callback-auth"
                / "keys-2026-11.csv.set-snapshot-callback-auth.ckpt")
        assert f"bulk: checkpoint {ckpt}" in err  # printed, quiet or not: the next command needs it
        assert failures_path(ckpt, Format.CSV).read_text().splitlines()[1:] == ["gone.example.com"]
        assert stat.S_IMODE(ckpt.parent.stat().st_mode) == 0o700  # it holds the backup, old keys and all
        calls = sim.stats()["total"]
        # Named outright, a checkpoint beside the keys file is refused before anything is written or sent.
        other = tmp_path / "fleet2.txt"
        other.write_text("c.example.com\n")
        code, _, err = await bulk("rotate", "--yes", str(other), "--keys-out", str(keys_dir / "keys-2026-12.csv"),
                                  "--endpoint", sim.url, "--quiet", "--checkpoint", str(keys_dir / "r.ckpt"))
        assert code == 2 and "receiver" in err, err
        assert sorted(p.name for p in keys_dir.iterdir()) == ["keys-2026-11.csv"]
        assert sim.stats()["total"] == calls


async def test_run_state_goes_to_the_state_dir_given_else_the_user_state_directory(tmp_path: Path,
                                                                                   sim: Simulator) -> None:
    """Item 12: --state-dir, else $BULK_STATE_DIR, else ~/.local/state/bulk; never beside the input."""
    src = tmp_path / "in" / "d.csv"
    src.parent.mkdir()
    src.write_text(f"DomainName,NotifyUrl\na.example.com,{URL}\n")
    given = tmp_path / "given"
    code, _, err = await bulk(*add_args(src, sim, "--state-dir", str(given)))
    assert code == 0, err
    run = given / "d.csv.add-live-snapshot-notify-config"
    assert (run / "d.csv.add-live-snapshot-notify-config.ckpt").is_file()
    assert (run / "d.csv.add-live-snapshot-notify-config.backup.jsonl").is_file()
    assert f"bulk: checkpoint {run}" in err
    code, out, err = await bulk("status", str(run), "--json")  # the run's directory names its checkpoint
    assert code == 0 and '"done":1' in out, out + err
    env = {k: v for k, v in os.environ.items() if k not in ("BULK_STATE_DIR", "XDG_STATE_HOME")}
    env["HOME"] = str(tmp_path / "home")
    code, _, err = await bulk(*add_args(src, sim, "--if-exists", "skip"), env=env)
    assert code == 0, err
    home = tmp_path / "home" / ".local" / "state" / "bulk" / "d.csv.add-live-snapshot-notify-config"
    assert (home / "d.csv.add-live-snapshot-notify-config.ckpt").is_file(), err
    assert sorted(p.name for p in src.parent.iterdir()) == ["d.csv"]
