"""Keys and the keys file: generated safely, written before use, refused when changed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulk.keys import (
    ALPHABET,
    KEY_COLUMNS,
    KeysFileError,
    generate_key,
    generate_keys,
    keys_digest,
    load_or_create_keys,
    read_keys_file,
    write_keys_file,
)

DOMAINS = ["a.example.com", "b.example.com"]
KEY_A, KEY_B = "A" * 20, "b1" * 12


def _start(path: Path, domains: list[str] = DOMAINS, **kw: object) -> tuple[dict[str, str], str]:
    args: dict = {"length": 24, "same_key": False, "column": "CallbackAuthKey", "expected_digest": None} | kw
    return load_or_create_keys(path, domains, **args)


@given(st.integers(16, 32))
def test_generated_keys_obey_the_rule(length: int) -> None:
    key = generate_key(length)
    assert len(key) == length and set(key) <= set(ALPHABET)


@pytest.mark.parametrize("length", [15, 33, 0, -1])
def test_lengths_outside_the_rule_are_refused(length: int) -> None:
    with pytest.raises(ValueError):
        generate_key(length)
    with pytest.raises(ValueError):
        generate_keys([], length=length)  # refused even with nothing to generate


def test_keys_are_unique_per_domain_or_shared() -> None:
    domains = [f"d{i}.example.com" for i in range(500)]
    keys = generate_keys(domains, length=16)
    assert list(keys) == domains and len(set(keys.values())) == 500
    assert all(len(k) == 16 for k in keys.values())
    shared = generate_keys(domains, same_key=True)
    assert len(set(shared.values())) == 1 and len(shared) == 500


def test_keys_file_is_0600_atomic_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    keys = generate_keys(DOMAINS)
    digest = write_keys_file(path, keys)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["keys.csv"]  # no temporary file left over
    assert read_keys_file(path) == ("CallbackAuthKey", keys)
    assert keys_digest(path) == digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.read_text().splitlines()[0] == "DomainName,CallbackAuthKey"


def test_replacing_a_loose_file_leaves_a_private_one(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    path.write_text("old\n")
    os.chmod(path, 0o644)
    write_keys_file(path, {"a.example.com": KEY_A}, column="NotifyAuthKey")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert read_keys_file(path) == ("NotifyAuthKey", {"a.example.com": KEY_A})


def test_writing_refuses_an_unknown_column_or_a_bad_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    with pytest.raises(ValueError, match="column"):
        write_keys_file(path, {"a.example.com": KEY_A}, column="Key")
    with pytest.raises(KeysFileError, match="a.example.com") as info:
        write_keys_file(path, {"a.example.com": "bad-key-with-dashes!"})
    assert "bad-key" not in str(info.value)
    assert not path.exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_file_others_can_access_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keys.csv"
    write_keys_file(path, {"a.example.com": KEY_A})
    os.chmod(path, mode)
    with pytest.raises(KeysFileError, match="chmod 600") as info:
        read_keys_file(path)
    assert f"{mode:04o}" in str(info.value) and KEY_A not in str(info.value)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("DomainName,CallbackAuthKey\na.example.com,shortkey\n", "line 2: the key must be"),
        ("DomainName,CallbackAuthKey\na.example.com,AAAAAAAAAAAAAAAAAAA-\n", "line 2: the key must be"),
        (f"DomainName,CallbackAuthKey\na.example.com,{KEY_A}\nA.example.com,{KEY_B}\n",
         "line 3: A.example.com listed twice"),
        (f"DomainName,CallbackAuthKey\na.example.com,{KEY_A},extra\n", "line 2 must have two fields"),
        (f"DomainName,CallbackAuthKey\n,{KEY_A}\n", "line 2 has no domain"),
        (f"Domain,Key\na.example.com,{KEY_A}\n", "must start with DomainName"),
        ("", "must start with DomainName"),
    ],
)
def test_malformed_files_are_refused_without_showing_keys(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "keys.csv"
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(KeysFileError, match=match) as info:
        read_keys_file(path)
    for secret in ("shortkey", "AAAAAAAAAAAAAAAAAAA", KEY_A, KEY_B):
        assert secret not in str(info.value)


def test_blank_lines_and_a_bom_are_tolerated_and_bad_bytes_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    path.write_bytes(f"\ufeffDomainName,CallbackAuthKey\na.example.com,{KEY_A}\n\nb.example.com,{KEY_B}\n\n".encode())
    os.chmod(path, 0o600)
    assert read_keys_file(path) == ("CallbackAuthKey", {"a.example.com": KEY_A, "b.example.com": KEY_B})
    path.write_bytes(b"DomainName,CallbackAuthKey\na.example.com,\xff" + KEY_A.encode() + b"\n")
    with pytest.raises(KeysFileError, match="not UTF-8"):
        read_keys_file(path)


def test_a_missing_file_is_a_keys_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeysFileError, match="cannot read"):
        read_keys_file(tmp_path / "nope.csv")


def test_start_then_resume_reuses_the_same_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    keys, digest = _start(path)
    assert list(keys) == DOMAINS and all(len(k) == 24 for k in keys.values())
    assert digest == keys_digest(path) and read_keys_file(path) == ("CallbackAuthKey", keys)
    again, same = _start(path, expected_digest=digest)
    assert again == keys and same == digest


def test_starting_never_overwrites_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    _, digest = _start(path)
    before = path.read_bytes()
    with pytest.raises(KeysFileError, match="already exists.*new \\(dated\\)"):
        _start(path)
    assert path.read_bytes() == before and keys_digest(path) == digest


def test_resuming_refuses_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    keys, digest = _start(path)
    write_keys_file(path, generate_keys(DOMAINS))  # valid, same domains, other keys
    with pytest.raises(KeysFileError, match="changed since the rotation started") as info:
        _start(path, expected_digest=digest)
    assert not any(key in str(info.value) for key in keys.values())


def test_resuming_refuses_a_loose_file_even_if_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    _, digest = _start(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeysFileError, match="chmod 600"):
        _start(path, expected_digest=digest)


def test_resuming_needs_the_file_every_domain_and_the_same_column(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    _, digest = _start(path)
    with pytest.raises(KeysFileError, match="not in keys file .*c.example.com"):
        _start(path, [*DOMAINS, "c.example.com"], expected_digest=digest)
    with pytest.raises(KeysFileError, match="needs NotifyAuthKey"):
        _start(path, column=KEY_COLUMNS["update-notify-config"], expected_digest=digest)
    path.unlink()
    with pytest.raises(KeysFileError, match="which is gone"):
        _start(path, expected_digest=digest)


def test_same_key_rotation_writes_one_key_for_all(tmp_path: Path) -> None:
    keys, _ = _start(tmp_path / "keys.csv", same_key=True, column="NotifyAuthKey")
    assert len(set(keys.values())) == 1
    assert read_keys_file(tmp_path / "keys.csv")[0] == "NotifyAuthKey"
