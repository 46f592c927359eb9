"""The library's front door: one import runs a job, and every error raised on purpose is a BulkError.

The command maps BulkError alone to its exit code: an exception that is not
one is a bug, and exits 70 ("internal error"), never 2 ("usage error").
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest
from conftest import TEST_AK_ID, TEST_AK_SECRET

import bulk
from bulk.sim import SimConfig, Simulator


def test_the_front_door_names_exist_and_are_the_library_s_own() -> None:
    assert sorted(bulk.__all__) == sorted(set(bulk.__all__))
    for name in bulk.__all__:
        assert getattr(bulk, name) is not None, name
    assert issubclass(bulk.UsageError, bulk.BulkError) and issubclass(bulk.UsageError, ValueError)
    assert bulk.BulkError.exit_code == bulk.Exit.USAGE == 2


async def test_one_import_applies_then_verifies_a_job(tmp_path: Path) -> None:
    src = tmp_path / "d.csv"
    src.write_text("DomainName\n" + "".join(f"d{i}.example.com\n" for i in range(12)))
    action = bulk.resolve("AddLiveSnapshotNotifyConfig")
    options = bulk.RunOptions(action=action, input_path=src, checkpoint_path=tmp_path / "d.ckpt",
                              overrides={"NotifyUrl": "https://cb.example.com/x"}, qps=500)
    credentials = bulk.StaticCredentials(bulk.Credentials(TEST_AK_ID, TEST_AK_SECRET))
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=500)) as sim:
        async with bulk.LiveClient(credentials=credentials, endpoint=sim.url) as client:
            result = await bulk.run(options, client=client)
            verify = bulk.verify_options(options.checkpoint_path, tuning=bulk.Tuning(qps=500))
            check = await bulk.run(verify, client=client)
    assert result.exit_code == bulk.Exit.OK and result.counts["done"] == 12
    assert check.exit_code == bulk.Exit.OK and check.counts["done"] == 12
    assert len(sim.notify_configs) == 12


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"qps": 0}, "--qps must be positive"),
    ({"if_exists": "sometimes"}, "--if-exists must be one of fail, skip, update"),
])
def test_a_bad_option_is_a_usage_error(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(bulk.UsageError, match=message) as info:
        bulk.RunOptions(action=bulk.resolve("AddLiveSnapshotNotifyConfig"), input_path=tmp_path / "d.csv",
                        checkpoint_path=tmp_path / "d.ckpt", **kwargs)  # type: ignore[arg-type]
    assert info.value.exit_code == 2
    with pytest.raises(bulk.UsageError, match="unknown action"):
        bulk.resolve("NoSuchAction")


def test_a_bug_in_the_library_exits_70_not_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A ValueError (or KeyError) from inside the library is not the user's doing.

    The command's own entry point, in process (a new interpreter cost 0.9 s of CPU for nothing this asks)."""
    from bulk.checkpoint import Checkpoint
    from bulk.cli import main

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("a bug deep inside")

    ckpt = tmp_path / "d.ckpt"
    ckpt.write_bytes(b"")
    monkeypatch.setattr(Checkpoint, "open_readonly", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the debug log goes
    monkeypatch.setattr(sys, "argv", ["bulk", "status", str(ckpt)])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 70, err
    assert "internal error: ValueError" in err and "a bug deep inside" not in err
    logs = list(tmp_path.glob("bulk-debug-*.log"))
    assert len(logs) == 1  # in the temporary directory, not the real one
