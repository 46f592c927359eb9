"""Keys and the keys file: generated safely, written before use, refused when changed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulk.keys import (
    ALPHABET,
    KeysFileError,
    generate_key,
    generate_keys,
    keys_digest,
    load_or_create_keys,
    read_keys_file,
    write_keys_file,
)


@given(st.integers(16, 32))
def test_generated_keys_obey_the_rule(length: int) -> None:
    key = generate_key(length)
    assert len(key) == length and set(key) <= set(ALPHABET)


@pytest.mark.parametrize("length", [15, 33, 0])
def test_lengths_outside_the_rule_are_refused(length: int) -> None:
    with pytest.raises(ValueError):
        generate_key(length)


def test_keys_are_unique_per_domain_or_shared() -> None:
    domains = [f"d{i}.example.com" for i in range(500)]
    keys = generate_keys(domains)
    assert list(keys) == domains and len(set(keys.values())) == 500
    shared = generate_keys(domains, same_key=True)
    assert len(set(shared.values())) == 1


def test_keys_file_is_0600_atomic_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    keys = generate_keys(["a.example.com", "b.example.com"])
    digest = write_keys_file(path, keys)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["keys.csv"]  # no temporary file left over
    assert read_keys_file(path) == ("CallbackAuthKey", keys)
    assert keys_digest(path) == digest


def test_unsafe_or_malformed_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    write_keys_file(path, {"a.example.com": "A" * 20})
    os.chmod(path, 0o644)
    with pytest.raises(KeysFileError, match="chmod 600"):
        read_keys_file(path)
    path.write_text("DomainName,CallbackAuthKey\na.example.com,short\n")
    os.chmod(path, 0o600)
    with pytest.raises(KeysFileError, match="line 2") as info:
        read_keys_file(path)
    assert "short" not in str(info.value)


def test_start_then_resume_reuses_the_same_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    domains = ["a.example.com", "b.example.com"]
    keys, digest = load_or_create_keys(path, domains, length=24, same_key=False, column="CallbackAuthKey",
                                       expected_digest=None)
    # Starting again over an existing file would overwrite keys that may be in use.
    with pytest.raises(KeysFileError, match="already exists"):
        load_or_create_keys(path, domains, length=24, same_key=False, column="CallbackAuthKey", expected_digest=None)
    again, same = load_or_create_keys(path, domains, length=24, same_key=False, column="CallbackAuthKey",
                                      expected_digest=digest)
    assert again == keys and same == digest
    write_keys_file(path, generate_keys(domains))
    with pytest.raises(KeysFileError, match="changed"):
        load_or_create_keys(path, domains, length=24, same_key=False, column="CallbackAuthKey",
                            expected_digest=digest)
