"""Credentials: the official chain, profiles, clear failures, and no secret in any message."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from conftest import TEST_AK_ID, TEST_AK_SECRET

from bulk.credentials import Credentials, fingerprint


def _in_fresh_process(code: str, env: dict[str, str], home: Path) -> subprocess.CompletedProcess[str]:
    """The chain reads its environment at import: each case gets its own interpreter."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
    full.update(env, HOME=str(home), ALIBABA_CLOUD_ECS_METADATA_DISABLED="true")
    script = textwrap.dedent("""
        import asyncio, json
        from bulk.credentials import CredentialsError, load_credentials
        async def main(profile):
            try:
                source = await load_credentials(profile=profile)
                c = await source.get()
                print(json.dumps({"id": c.access_key_id, "secret": c.access_key_secret, "token": c.security_token}))
            except CredentialsError as exc:
                print(json.dumps({"error": str(exc)}))
    """) + code
    return subprocess.run([sys.executable, "-c", script], env=full, capture_output=True, text=True, timeout=30)


def test_environment_credentials_with_sts_token(tmp_path: Path) -> None:
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "STS.id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "sts-secret",
           "ALIBABA_CLOUD_SECURITY_TOKEN": "sts-token"}
    got = json.loads(_in_fresh_process("asyncio.run(main(None))", env, tmp_path).stdout)
    assert got == {"id": "STS.id", "secret": "sts-secret", "token": "sts-token"}


def test_named_aliyun_cli_profile(tmp_path: Path) -> None:
    (tmp_path / ".aliyun").mkdir()
    (tmp_path / ".aliyun" / "config.json").write_text(json.dumps({
        "current": "default",
        "profiles": [
            {"name": "default", "mode": "AK", "access_key_id": "AK-default", "access_key_secret": "s-default"},
            {"name": "other", "mode": "AK", "access_key_id": "AK-other", "access_key_secret": "s-other"},
        ],
    }))
    got = json.loads(_in_fresh_process("asyncio.run(main('other'))", {}, tmp_path).stdout)
    assert got["id"] == "AK-other" and got["secret"] == "s-other"


def test_missing_credentials_fail_fast_and_clearly(tmp_path: Path) -> None:
    started = time.monotonic()
    got = json.loads(_in_fresh_process("asyncio.run(main(None))", {}, tmp_path).stdout)
    assert time.monotonic() - started < 15  # no metadata service was waited for
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in got["error"] and "ALIBABA_CLOUD_ACCESS_KEY_SECRET" in got["error"]
    assert "--profile" in got["error"]


def test_broken_profile_names_the_profile_without_its_secret(tmp_path: Path) -> None:
    (tmp_path / ".aliyun").mkdir()
    (tmp_path / ".aliyun" / "config.json").write_text(json.dumps({
        "current": "p", "profiles": [{"name": "p", "mode": "AK", "access_key_id": "AK-p", "access_key_secret": "hidden-secret"}],
    }))
    got = json.loads(_in_fresh_process("asyncio.run(main('nosuch'))", {}, tmp_path).stdout)
    assert "'nosuch'" in got["error"] and "hidden-secret" not in got["error"]


def test_the_chain_is_asked_for_every_call() -> None:
    from bulk.credentials import ChainCredentials

    source = ChainCredentials()
    first = asyncio.run(source.get())
    assert first == Credentials(TEST_AK_ID, TEST_AK_SECRET)
    calls = []
    real = source._client.get_credential_async  # the official client, observed, not replaced

    async def counting():
        calls.append(1)
        return await real()

    source._client.get_credential_async = counting
    asyncio.run(source.get())
    asyncio.run(source.get())
    assert len(calls) == 2


def test_no_secret_in_repr_and_a_stable_short_fingerprint() -> None:
    creds = Credentials("AKID", "very-secret-value", "token-value")
    assert "very-secret-value" not in repr(creds) and "token-value" not in repr(creds)
    assert creds.fingerprint == f"AKID/{fingerprint('very-secret-value')}"
    assert fingerprint("x") == fingerprint("x") != fingerprint("y")
    assert len(fingerprint("x")) == len("fp:") + 8
