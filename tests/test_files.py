"""Files bulk writes: whole ones renamed into place, appended ones opened safely; 0600, never through a planted link."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import bulk

from bulk.actions import resolve
from bulk.files import UnsafeFile, atomic_file, open_append, write_atomic
from bulk.paths import default_checkpoint
from bulk.sim import Simulator

URL = "https://cb.example.com/snap"



def planted(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A link at ``name`` to a file of someone else's,
    as a careless or hostile colleague leaves in a shared directory.
    """
    target = tmp_path / "elsewhere" / f"precious-{name}"
    target.parent.mkdir(exist_ok=True)
    target.write_text("precious\n")
    os.chmod(target, 0o644)
    link = tmp_path / name
    link.symlink_to(target)
    return link, target


def mode(path: Path) -> int:
    return path.lstat().st_mode & 0o777


def test_a_file_written_whole_replaces_a_planted_link_and_is_0600(tmp_path: Path) -> None:
    link, target = planted(tmp_path, "keys.csv")
    write_atomic(link, b"new\n")
    assert target.read_text() == "precious\n" and not link.is_symlink()
    assert link.read_bytes() == b"new\n" and mode(link) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "keys.csv"]  # no temporary file left


def test_a_file_written_whole_is_untouched_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    path.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_file(path) as out:
        out.write(b"half")
        raise RuntimeError("disk gone")
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["report.csv"]


def test_an_appended_file_is_created_0600_and_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "calls.log"
    with open_append(path) as f:
        f.write(b"one\n")
    with open_append(path) as f:
        f.write(b"two\n")
    assert path.read_bytes() == b"one\ntwo\n" and mode(path) == 0o600


def test_an_appended_file_that_others_may_read_or_a_link_is_refused(tmp_path: Path) -> None:
    loose = tmp_path / "loose.log"
    loose.write_text("kept\n")
    os.chmod(loose, 0o640)
    with pytest.raises(UnsafeFile, match=r"mode 0640.*chmod 600"):
        open_append(loose)
    assert loose.read_text() == "kept\n" and mode(loose) == 0o640
    link, target = planted(tmp_path, "calls.log")
    with pytest.raises(UnsafeFile, match="symbolic link"):
        open_append(link)
    assert target.read_text() == "precious\n"
    with open_append(Path("/dev/null")) as f:  # a device keeps nothing for others
        f.write(b"x")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_an_appended_file_of_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs.log"
    theirs.write_text("")
    os.chmod(theirs, 0o600)
    os.chown(theirs, 1, 1)
    with pytest.raises(UnsafeFile, match="another user"):
        open_append(theirs)


async def test_the_report_plan_and_log_never_follow_a_planted_link(tmp_path: Path, sim: Simulator) -> None:
    src = tmp_path / "d.csv"
    src.write_text("DomainName\na.example.com\nb.example.com\n")
    report, report_target = planted(tmp_path, "report.csv")
    code, _, err = await bulk("run", str(src), "--action", "AddLiveSnapshotNotifyConfig", "--set", f"NotifyUrl={URL}",
                              "--endpoint", sim.url, "--quiet", "--report", str(report),
                              "--log-file", str(tmp_path / "calls.log"))
    assert code == 0, err
    assert report_target.read_text() == "precious\n" and not report.is_symlink() and mode(report) == 0o600
    assert "a.example.com" in report.read_text()
    assert mode(tmp_path / "calls.log") == 0o600
    ckpt = default_checkpoint(src, resolve("AddLiveSnapshotNotifyConfig"))
    again, again_target = planted(tmp_path, "again.csv")
    code, _, err = await bulk("report", str(ckpt), "--output", str(again))
    assert code == 0 and again_target.read_text() == "precious\n" and mode(again) == 0o600, err
    plan, plan_target = planted(tmp_path, "plan.jsonl")
    code, _, err = await bulk("plan", str(src), "--action", "AddLiveSnapshotNotifyConfig", "--set", f"NotifyUrl={URL}",
                              "--endpoint", sim.url, "--quiet", "--output", str(plan))
    assert code in (0, 1), err
    assert plan_target.read_text() == "precious\n" and not plan.is_symlink() and mode(plan) == 0o600


async def test_a_log_file_others_may_read_is_refused_with_exit_2(tmp_path: Path, sim: Simulator) -> None:
    src = tmp_path / "d.csv"
    src.write_text("DomainName\na.example.com\n")
    log = tmp_path / "calls.log"
    log.write_text("an earlier run\n")
    os.chmod(log, 0o644)
    args = ("run", str(src), "--action", "AddLiveSnapshotNotifyConfig", "--set", f"NotifyUrl={URL}",
            "--endpoint", sim.url, "--quiet", "--log-file", str(log))
    code, _, err = await bulk(*args)
    assert code == 2 and f"{log} has mode 0644" in err and "Traceback" not in err, err
    assert log.read_text() == "an earlier run\n" and not sim.notify_configs
    link, target = planted(tmp_path, "link.log")
    code, _, err = await bulk(*args[:-1], str(link))
    assert code == 2 and "symbolic link" in err and target.read_text() == "precious\n", err
    os.chmod(log, 0o600)
    code, _, err = await bulk(*args)
    assert code == 0, err
    assert log.read_text().startswith("an earlier run\n{") and len(sim.notify_configs) == 1
