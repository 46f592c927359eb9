"""``bulk sim serve`` as an operator runs it: secrets from files, a warning for typed ones, ``--bind``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from support import start_bulk
from yarl import URL

from bulk.credentials import Credentials
from bulk.signing import sign

SECRET_A = "sim-secret-a-0123456789"
SECRET_B = "sim-secret-b-0123456789"
WARNING = "is visible to other users (ps)"


def secret_file(path: Path, secret: str, mode: int = 0o600) -> Path:
    path.write_text(secret + "\n")
    path.chmod(mode)
    return path


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "BULK_SIM_ACCESS_KEY_SECRET"}
    return {**env, **extra}


@asynccontextmanager
async def serving(*args: str, env: dict[str, str] | None = None) -> AsyncIterator[tuple[str, list[str]]]:
    """``bulk sim serve ARGS`` until the block ends: its URL, and (filled on the way out) its stderr."""
    proc = await start_bulk("sim", "serve", "--port", "0", *args, env=env or environment())
    stderr: list[str] = []
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        yield first.rsplit(" ", 1)[1], stderr
    finally:
        proc.terminate()
        _, err = await proc.communicate()
        stderr.append(err.decode())


async def status_of(url: str, key_id: str, secret: str) -> int:
    req = sign("v3", "QuerySnapshotCallbackAuth", {"DomainName": "a.example.com"}, Credentials(key_id, secret),
               host=urlsplit(url).netloc)
    async with aiohttp.ClientSession() as s, s.post(URL(f"{url}/?{req.query}", encoded=True),
                                                    headers=req.headers) as resp:
        return resp.status


async def test_secrets_from_files_are_accepted_without_a_warning(tmp_path: Path) -> None:
    a = secret_file(tmp_path / "a", SECRET_A)
    b = secret_file(tmp_path / "b", SECRET_B)
    async with serving("--bind", "127.0.0.1", "--access-key-id", "LTAIa", "--access-key-secret", f"@{a}",
                       "--access-key", f"LTAIb:@{b}") as (url, stderr):
        assert url.startswith("http://127.0.0.1:")
        assert await status_of(url, "LTAIa", SECRET_A) == 200
        assert await status_of(url, "LTAIb", SECRET_B) == 200
        assert await status_of(url, "LTAIb", f"@{b}") == 400  # the file's content is the secret, not its name
    assert "warning" not in stderr[0]


async def test_a_secret_from_the_environment_does_not_warn(tmp_path: Path) -> None:
    env = environment(BULK_SIM_ACCESS_KEY_SECRET=SECRET_A)
    async with serving("--access-key-id", "LTAIa", env=env) as (url, stderr):
        assert await status_of(url, "LTAIa", SECRET_A) == 200
    assert "warning" not in stderr[0]


@pytest.mark.parametrize(("args", "option"), [
    (["--access-key-id", "LTAIa", "--access-key-secret", SECRET_A], "--access-key-secret"),
    (["--access-key", f"LTAIa:{SECRET_A}"], "--access-key"),
])
async def test_a_secret_typed_on_the_command_line_warns(args: list[str], option: str) -> None:
    async with serving(*args) as (url, stderr):
        assert await status_of(url, "LTAIa", SECRET_A) == 200
    text = " ".join(stderr[0].split())  # rich wraps long lines
    assert f"warning: a secret given literally to {option} {WARNING}" in text
    assert SECRET_A not in stderr[0]


@pytest.mark.parametrize(("args", "message"), [
    (["--access-key-id", "LTAIa", "--access-key-secret", "@{missing}"], "--access-key-secret: cannot read"),
    (["--access-key-id", "LTAIa", "--access-key-secret", "@{open}"], "accessible by group or others"),
    (["--access-key-id", "LTAIa", "--access-key-secret", "@"], "@ names no file"),
    (["--access-key", "LTAIa:@{two_lines}"], "--access-key number 1: secret file"),
    (["--access-key", "LTAIa:@{open}"], "accessible by group or others"),
    (["--host", "127.0.0.1"], "No such option"),  # every listening address in bulk is --bind
])
async def test_unusable_secret_files_and_the_old_host_option_are_refused(
    tmp_path: Path, args: list[str], message: str
) -> None:
    files = {
        "missing": tmp_path / "missing",
        "open": secret_file(tmp_path / "open", SECRET_A, 0o644),
        "two_lines": secret_file(tmp_path / "two", f"{SECRET_A}\n{SECRET_B}"),
    }
    proc = await start_bulk("sim", "serve", "--port", "0", *(a.format(**files) for a in args), env=environment())
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    text = " ".join(err.decode().split())
    assert message in text, text
    assert SECRET_A not in text + out.decode() and SECRET_B not in text + out.decode()
