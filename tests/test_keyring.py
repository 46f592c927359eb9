"""The receiver's keys files: whom they must belong to, and when a changed one may be loaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bulk.callbacks import KEYS_FILE_NAME, Receiver, keys_files, load_keyring
from bulk.files import write_atomic
from bulk.keys import KeysFileError, write_keys_file

KEYS = {f"d{i}.example.com": f"key{i:02d}abcdefghijklmnop" for i in range(20)}
ROOT = os.geteuid() == 0
as_root = pytest.mark.skipif(not ROOT, reason="chown to other users needs root")


def private_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o700)
    return folder


def test_a_private_file_in_a_private_folder_is_trusted(tmp_path: Path) -> None:
    folder = private_folder(tmp_path)
    write_keys_file(folder / "keys-2026-10.csv", KEYS)
    assert load_keyring([folder]).names == ("keys-2026-10",)


@pytest.mark.parametrize(("mode", "problem"), [
    (0o644, "is accessible by group or others (mode 0644)"),
    (0o604, "is accessible by group or others (mode 0604)"),
    (0o640, "is accessible by group or others (mode 0640)"),  # group read, owned by the user itself
    (0o620, "is writable by group or others (mode 0620)"),
    (0o602, "is writable by group or others (mode 0602)"),
])
def test_modes_that_let_others_in_are_refused(tmp_path: Path, mode: int, problem: str) -> None:
    folder = private_folder(tmp_path)
    path = folder / "keys-2026-10.csv"
    write_keys_file(path, KEYS)
    os.chmod(path, mode)
    if ROOT:
        os.chown(path, 0, 54321)  # a group this process is not in
    with pytest.raises(KeysFileError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        load_keyring([folder])


def test_a_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    folder = private_folder(tmp_path)
    write_keys_file(folder / "keys-2026-10.csv", KEYS)
    for mode in (0o777, 0o775, 0o1777):
        os.chmod(folder, mode)
        with pytest.raises(KeysFileError, match="in a directory writable by group or others"):
            load_keyring([folder])
    os.chmod(folder, 0o755)
    assert load_keyring([folder]).names == ("keys-2026-10",)


@as_root
def test_another_users_file_or_folder_is_refused(tmp_path: Path) -> None:
    folder = private_folder(tmp_path)
    path = folder / "keys-2026-10.csv"
    write_keys_file(path, KEYS)
    os.chown(path, 4242, 4242)
    with pytest.raises(KeysFileError, match="is owned by uid 4242, not by this user"):
        load_keyring([folder])
    os.chown(path, 0, 0)
    os.chown(folder, 4242, 4242)
    with pytest.raises(KeysFileError, match="in a directory owned by uid 4242"):
        load_keyring([folder])


@as_root
def test_a_kubernetes_secret_volume_is_accepted(tmp_path: Path) -> None:
    # What the kubelet makes: a world-writable sticky mount, symlinks into a timestamped folder,
    # files owned by root with mode 0440 and the pod's fsGroup.
    mount = tmp_path / "secret"
    mount.mkdir()
    os.chmod(mount, 0o1777)
    real = mount / "..2026_12_03_09_00_00.000000001"
    real.mkdir(mode=0o755)
    write_keys_file(real / "keys-2026-10.csv", KEYS)
    os.chmod(real / "keys-2026-10.csv", 0o440)
    os.chown(real / "keys-2026-10.csv", 0, os.getegid())
    (mount / "..data").symlink_to(real.name)
    (mount / "keys-2026-10.csv").symlink_to("..data/keys-2026-10.csv")
    assert load_keyring([mount]).names == ("keys-2026-10",)
    # The same file with a group this process is not in: refused.
    os.chown(real / "keys-2026-10.csv", 0, 54321)
    with pytest.raises(KeysFileError, match="accessible by group or others"):
        load_keyring([mount])


async def test_a_file_written_in_place_is_loaded_only_once_it_is_stable(tmp_path: Path) -> None:
    folder = private_folder(tmp_path)
    path = folder / "keys-2026-10.csv"
    write_keys_file(path, KEYS)
    full = path.read_bytes()
    receiver = Receiver([folder], poll_interval=0)
    half = full[: len(full) // 2].rsplit(b"\n", 1)[0] + b"\n"  # whole lines: a file that loads, short of domains
    with path.open("r+b") as f:  # in place, as an editor or `cat > file` would
        f.truncate(0)
        f.write(half)
    assert not await receiver.look()  # changed since the keys in use: wait for a second look
    with path.open("ab") as f:
        f.write(full[len(half):])
    os.utime(path, ns=(1, 1))  # the writer's second write, whatever the clock's resolution
    assert not await receiver.look()  # changed again
    assert len(receiver.keyring.generations[0].keys) == len(KEYS)
    assert await receiver.look()  # unchanged across two looks: loaded, whole
    assert len(receiver.keyring.generations[0].keys) == len(KEYS)
    assert receiver.stats()["reloads"] == {"ok": 1, "failed": 0}


async def test_a_file_replaced_by_rename_is_loaded_at_once(tmp_path: Path) -> None:
    folder = private_folder(tmp_path)
    path = folder / "keys-2026-10.csv"
    write_keys_file(path, KEYS)
    receiver = Receiver([folder], poll_interval=0)
    write_keys_file(path, dict(list(KEYS.items())[:5]))  # write_atomic: a new inode renamed into place
    assert await receiver.look()
    assert len(receiver.keyring.generations[0].keys) == 5
    # A new file may still be being written: it waits one look.
    write_atomic(folder / "keys-2026-11.csv", (folder / "keys-2026-10.csv").read_bytes())
    os.chmod(folder / "keys-2026-11.csv", 0o600)
    assert not await receiver.look()
    assert await receiver.look()
    assert receiver.keyring.names == ("keys-2026-10", "keys-2026-11")


@pytest.mark.parametrize(("name", "is_keys_file"), [
    ("keys-2026-11.csv", True), ("keys-2026-11-b.csv", True), ("KEYS-2026-11.CSV", True),
    ("keys-2026-11.csv.set-snapshot-callback-auth.failures.csv", False),
    ("keys-2026-11.csv.set-snapshot-callback-auth.ckpt", False), (".keys-2026-11.csv.tmp", False),
    ("domains.csv", False), ("keys-demo.csv", False), ("keys-2026-11.csv.bak.csv", False),
])
def test_the_naming_rule_of_keys_files(name: str, is_keys_file: bool) -> None:
    assert bool(KEYS_FILE_NAME.fullmatch(name)) is is_keys_file


def test_a_directory_gives_only_keys_files_a_file_named_is_taken_as_given(tmp_path: Path) -> None:
    folder = private_folder(tmp_path)
    write_keys_file(folder / "keys-2026-10.csv", KEYS)
    write_keys_file(folder / "keys-2026-11.csv.set-snapshot-callback-auth.failures.csv", KEYS)
    write_keys_file(folder / "staging.csv", KEYS)
    assert keys_files([folder]) == [folder / "keys-2026-10.csv"]
    ring = load_keyring([folder, folder / "staging.csv"])
    assert ring.names == ("keys-2026-10", "staging") and ring.rejected == ()


def test_one_bad_keys_file_is_left_out_not_the_set(tmp_path: Path) -> None:
    folder = private_folder(tmp_path)
    write_keys_file(folder / "keys-2026-10.csv", KEYS)
    (folder / "keys-2026-11.csv").write_bytes(b"DomainName,Key\n")
    os.chmod(folder / "keys-2026-11.csv", 0o600)
    write_keys_file(folder / "keys-2026-12.csv", KEYS)
    ring = load_keyring([folder])
    assert ring.names == ("keys-2026-10", "keys-2026-12")
    assert [(r.file, r.kind, r.kept) for r in ring.rejected] == [("keys-2026-11.csv", "malformed", False)]
    assert "must start with DomainName,CallbackAuthKey" in ring.rejected[0].reason
