"""Commands that work as printed (issue 22): a corrected command restarts a run that never sent, messages a
person can read, outputs checked before the first call, errors grouped, a semicolon CSV."""

from __future__ import annotations

from pathlib import Path

from conftest import TEST_AK_ID, TEST_AK_SECRET
from support import bulk, csv_of

from bulk.cli.common import plain_table
from bulk.inputs import Format
from bulk.paths import backup_path, failures_path
from bulk.report import accounts_table
from bulk.sim import SimConfig, Simulator

ADD = "AddLiveSnapshotNotifyConfig"
URL = "https://callback.example.com/snapshots"


async def test_a_run_that_never_sent_is_restarted_by_the_corrected_command(tmp_path: Path) -> None:
    src = csv_of(tmp_path / "d.csv", 5)
    ckpt = tmp_path / "d.ckpt"
    common = ["run", str(src), "--action", ADD, "--checkpoint", str(ckpt)]
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET})) as sim:
        # The NotifyUrl forgotten: every row invalid, nothing sent, a checkpoint left behind.
        code, _, err = await bulk(*common, "--endpoint", sim.url, "--quiet")
        assert code == 1, err
        assert ckpt.exists() and not sim.applied
        code, _, err = await bulk(*common, "--set", f"NotifyUrl={URL}", "--endpoint", sim.url, "--quiet")
        assert code == 0, err
        assert "never sent a call: started anew" in err
        assert "no --set values" in err and f"--set NotifyUrl={URL}" in err
        assert "overrides=" not in err and "{" not in err
        assert len(sim.applied) == 5
        # A run that did send is resumed, never started anew: other values are refused, said plainly.
        code, _, err = await bulk(*common, "--set", "NotifyUrl=https://other.example.com/x", "--endpoint", sim.url)
        assert code == 2, err
        assert f"was started with --set NotifyUrl={URL}" in err and "started anew" not in err
        assert "overrides=" not in err and "{" not in err and "'" not in err


async def test_validate_and_the_run_summary_give_one_line_per_distinct_error(tmp_path: Path) -> None:
    src = tmp_path / "d.csv"
    rows = [f"d{i:03d}.example.com" for i in range(200)] + ["not a domain", "d001.example.com"]
    src.write_text("DomainName\n" + "\n".join(rows) + "\n")
    code, out, _ = await bulk("validate", str(src), "--action", ADD)
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "invalid: 201 row(s): NotifyUrl is required (lines 2, 3, 4, 5, 6, ...)"
    assert lines[1] == "invalid: 1 row(s): DomainName is not a valid domain name (line 202)"
    assert len(lines) == 3 and lines[2].endswith("202 rows: 0 valid, 202 invalid")
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=1000)) as sim:
        code, _, err = await bulk("run", str(src), "--action", ADD, "--set", f"NotifyUrl={URL}", "--qps", "1000",
                                  "--endpoint", sim.url, "--checkpoint", str(tmp_path / "d.ckpt"))
        assert code == 1, err
    # Listed twice: one error whichever line came first.
    assert "bulk: invalid: 1 row(s): DomainName listed twice (line 203)" in err
    assert "bulk: invalid: 1 row(s): DomainName is not a valid domain name (line 202)" in err


async def test_every_output_path_is_checked_before_the_first_call(tmp_path: Path) -> None:
    src = csv_of(tmp_path / "d.csv", 3)
    ckpt = tmp_path / "state" / "d.ckpt"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET})) as sim:
        base = ["run", str(src), "--action", ADD, "--set", f"NotifyUrl={URL}", "--endpoint", sim.url,
                "--checkpoint", str(ckpt), "--quiet"]
        for more, named in ((["--report", str(blocker / "r.csv")], "r.csv"),
                            (["--log-file", str(blocker / "calls.jsonl")], "calls.jsonl")):
            code, _, err = await bulk(*base, *more)
            assert code == 2 and named in err and "internal error" not in err, err
        # The failures file and the backup, beside the checkpoint: a folder in their place is found first too.
        for beside in (failures_path(ckpt, Format.CSV), backup_path(ckpt)):
            beside.mkdir(parents=True)
            code, _, err = await bulk(*base)
            assert code == 2 and beside.name in err and "internal error" not in err, err
            beside.rmdir()
        assert sim.stats()["total"] == 0 and not ckpt.exists()
        code, _, err = await bulk(*base)
        assert code == 0, err


async def test_a_semicolon_csv_from_a_european_spreadsheet_is_read_as_such(tmp_path: Path) -> None:
    src = tmp_path / "excel.csv"
    other = "https://cb.example.com/a;b"
    src.write_text(f"DomainName;NotifyUrl;NotifyReqAuth\r\na.example.com;{URL};no\r\n"
                   f'b.example.com;"{other}";no\r\nnot a domain;{URL};no\r\n')
    code, out, _ = await bulk("validate", str(src), "--action", ADD)
    assert code == 1
    assert out.splitlines() == ["invalid: 1 row(s): DomainName is not a valid domain name (line 4)",
                                "4 lines: 1 header, 3 rows: 2 valid, 1 invalid"]
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET})) as sim:
        code, _, err = await bulk("run", str(src), "--action", ADD, "--endpoint", sim.url, "--quiet",
                                  "--checkpoint", str(tmp_path / "x.ckpt"))
        assert code == 1, err
        assert sim.notify_configs["a.example.com"]["NotifyUrl"] == URL
        assert sim.notify_configs["b.example.com"]["NotifyUrl"] == other


async def test_without_a_terminal_tables_are_key_value_lines_and_no_line_is_wrapped(tmp_path: Path) -> None:
    deep = tmp_path / ("a-folder-with-a-long-name-" * 4)
    deep.mkdir()
    src = deep / "d.csv"
    src.write_text("DomainName\na.example.com\nnot a domain\n")
    ckpt = deep / "d.ckpt"
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET})) as sim:
        code, _, err = await bulk("run", str(src), "--action", ADD, "--set", f"NotifyUrl={URL}", "--endpoint",
                                  sim.url, "--checkpoint", str(ckpt), "--report", str(deep / "r.csv"))
    assert code == 1, err
    assert not set("│┃━─┏┗╭") & set(err), err
    assert "bulk: summary done=1 skipped=0 failed=0 invalid=1 error_InvalidRow=1" in err.splitlines()
    assert f"bulk: report written to {deep / 'r.csv'}" in err.splitlines()
    assert f"bulk: checkpoint {ckpt}" in err.splitlines()


def test_a_table_of_many_columns_is_one_line_per_row() -> None:
    counts = {"done": 3, "skipped": 0, "failed": 1, "invalid": 0, "unknown": 0, "pending": 2, "sending": 0}
    lines = plain_table(accounts_table({None: counts, "prod": counts}))
    assert lines == [
        'bulk: by account profile="(run\'s credentials)" done=3 skipped=0 failed=1 invalid=0 unknown=0 to_send=2 '
        'stopped=""',
        'bulk: by account profile=prod done=3 skipped=0 failed=1 invalid=0 unknown=0 to_send=2 stopped=""',
    ]
