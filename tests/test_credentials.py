"""Credentials: the official chain, profiles, renewal, clear failures, and no secret in any message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import traceback
from pathlib import Path

import pytest
from conftest import TEST_AK_ID, TEST_AK_SECRET
from support import ACCOUNTS_CONFIG, WRONG_SECRET

from bulk.client import Failure, LiveClient, Success
from bulk.credentials import (
    ChainCredentials,
    Credentials,
    CredentialsError,
    ProfileSources,
    StaticCredentials,
    cli_config_path,
    fingerprint,
    load_credentials,
    profile_names,
)
from bulk.sim import SimConfig, Simulator

ENV_VARS = ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN")
PROFILE_SECRET = "profile-secret-do-not-print"


def bare_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment with no credentials at all, its home in a temp dir and no metadata service."""
    return {"HOME": str(home), "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true", **extra}


def write_cli_config(home: Path, config: object) -> None:
    (home / ".aliyun").mkdir(exist_ok=True)
    (home / ".aliyun" / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))


CLI_CONFIG = {
    "current": "default",
    "profiles": [
        {"name": "default", "mode": "AK", "access_key_id": "AK-default", "access_key_secret": "s-default"},
        {"name": "other", "mode": "AK", "access_key_id": "AK-other", "access_key_secret": PROFILE_SECRET},
        {"name": "sts", "mode": "StsToken", "access_key_id": "STS.p", "access_key_secret": "s-sts",
         "sts_token": "tok-p"},
    ],
}


def assert_clean(exc: CredentialsError, *secrets: str) -> str:
    """The message and the whole printed traceback hold none of the secrets, and no chained cause."""
    printed = "".join(traceback.format_exception(exc))
    for secret in secrets:
        assert secret not in printed
    assert exc.__cause__ is None
    return str(exc)


# -- environment --------------------------------------------------------------------------------


async def test_environment_credentials(tmp_path: Path) -> None:
    env = bare_env(tmp_path, ALIBABA_CLOUD_ACCESS_KEY_ID="AK-env", ALIBABA_CLOUD_ACCESS_KEY_SECRET="s-env")
    source = await load_credentials(environ=env)
    assert await source.get() == Credentials("AK-env", "s-env", None)


async def test_the_process_environment_is_the_default() -> None:
    # conftest exported the test AccessKey; no environ argument means os.environ.
    assert await (await load_credentials()).get() == Credentials(TEST_AK_ID, TEST_AK_SECRET)


async def test_sts_token_from_environment(tmp_path: Path) -> None:
    env = bare_env(tmp_path, ALIBABA_CLOUD_ACCESS_KEY_ID="STS.id", ALIBABA_CLOUD_ACCESS_KEY_SECRET="sts-secret",
                   ALIBABA_CLOUD_SECURITY_TOKEN="sts-token")
    assert await ChainCredentials(environ=env).get() == Credentials("STS.id", "sts-secret", "sts-token")


async def test_a_renewed_token_is_seen_by_the_next_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "STS.first")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "secret-1")
    monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "token-1")
    source = await load_credentials()
    assert await source.get() == Credentials("STS.first", "secret-1", "token-1")
    # Whatever renews the token (a sidecar, a wrapper) replaces all three.
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "STS.second")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "secret-2")
    monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "token-2")
    assert await source.get() == Credentials("STS.second", "secret-2", "token-2")


@pytest.mark.parametrize("changed", ENV_VARS)
async def test_a_change_to_any_one_variable_is_seen_by_the_next_call(
    monkeypatch: pytest.MonkeyPatch, changed: str
) -> None:
    # The source hands out what it found last while the environment holds the same three values.
    for name, value in zip(ENV_VARS, ("STS.same", "secret-same", "token-same"), strict=True):
        monkeypatch.setenv(name, value)
    source = await load_credentials()
    first = await source.get()
    assert await source.get() == first
    monkeypatch.setenv(changed, "renewed")
    renewed = await source.get()
    assert renewed != first and "renewed" in (renewed.access_key_id, renewed.access_key_secret,
                                              renewed.security_token)


@pytest.mark.parametrize(("present", "missing"), [(ENV_VARS[0], ENV_VARS[1]), (ENV_VARS[1], ENV_VARS[0])])
async def test_half_an_accesskey_is_refused_not_skipped(tmp_path: Path, present: str, missing: str) -> None:
    # A valid aliyun CLI profile exists: falling through to it would act on another account.
    write_cli_config(tmp_path, CLI_CONFIG)
    env = bare_env(tmp_path, **{present: "half-of-a-key-value"})
    with pytest.raises(CredentialsError) as info:
        await load_credentials(environ=env)
    message = assert_clean(info.value, "half-of-a-key-value")
    assert f"{missing} is empty" in message and "--profile" in message


# -- aliyun CLI profiles ------------------------------------------------------------------------


async def test_named_aliyun_cli_profile_beats_the_environment(tmp_path: Path) -> None:
    write_cli_config(tmp_path, CLI_CONFIG)
    env = bare_env(tmp_path, ALIBABA_CLOUD_ACCESS_KEY_ID="AK-env", ALIBABA_CLOUD_ACCESS_KEY_SECRET="s-env")
    source = await load_credentials(profile="other", environ=env)
    assert await source.get() == Credentials("AK-other", PROFILE_SECRET)
    sts = await load_credentials(profile="sts", environ=env)
    assert await sts.get() == Credentials("STS.p", "s-sts", "tok-p")


async def test_named_profile_from_the_real_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cli_config(tmp_path, CLI_CONFIG)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert await (await load_credentials(profile="other")).get() == Credentials("AK-other", PROFILE_SECRET)


async def test_without_environment_the_chain_uses_the_cli_current_profile(tmp_path: Path) -> None:
    write_cli_config(tmp_path, CLI_CONFIG)
    assert await (await load_credentials(environ=bare_env(tmp_path))).get() == Credentials("AK-default", "s-default")
    chosen = bare_env(tmp_path, ALIBABA_CLOUD_PROFILE="other")
    assert await (await load_credentials(environ=chosen)).get() == Credentials("AK-other", PROFILE_SECRET)


@pytest.mark.parametrize(
    ("profile", "config"),
    [
        ("nosuch", CLI_CONFIG),
        ("other", '{"profiles": [{"name": "other", "access_key_secret": "' + PROFILE_SECRET + '"'),  # not JSON
        ("other", {"profiles": [{"name": "other", "mode": "AK", "access_key_id": "AK-x", "access_key_secret": ""}]}),
        ("other", {"profiles": [{"name": "other", "mode": "StsToken", "access_key_secret": PROFILE_SECRET,
                                 "sts_token": "t"}]}),
        ("other", {"profiles": [{"name": "other", "mode": "Bogus", "access_key_secret": PROFILE_SECRET}]}),
        ("other", None),  # no config file at all
    ],
    ids=["unknown-name", "broken-json", "empty-secret", "empty-id", "unknown-mode", "no-file"],
)
async def test_broken_profile_names_the_profile_without_its_secret(
    tmp_path: Path, profile: str, config: object
) -> None:
    if config is not None:
        write_cli_config(tmp_path, config)
    env = bare_env(tmp_path, ALIBABA_CLOUD_ACCESS_KEY_ID="AK-env", ALIBABA_CLOUD_ACCESS_KEY_SECRET="env-secret-value")
    with pytest.raises(CredentialsError) as info:
        await load_credentials(profile=profile, environ=env)
    message = assert_clean(info.value, PROFILE_SECRET, "env-secret-value")
    assert f"profile {profile!r}" in message and str(tmp_path / ".aliyun" / "config.json") in message
    assert all(name in message for name in ENV_VARS) and "--profile" in message


# -- nothing at all -----------------------------------------------------------------------------


async def test_missing_credentials_fail_fast_and_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no aliyun CLI config, no credentials.ini
    started = time.monotonic()
    with pytest.raises(CredentialsError) as info:
        await load_credentials()
    assert time.monotonic() - started < 2  # no metadata service was waited for
    message = assert_clean(info.value, TEST_AK_SECRET)
    assert all(name in message for name in ENV_VARS) and "--profile" in message
    # What was tried is named, and the ECS metadata service is not among it.
    assert str(tmp_path / ".aliyun" / "config.json") in message and "ECS" not in message


def test_the_ecs_switch_is_read_from_the_environment_given(tmp_path: Path) -> None:
    """The package reads ALIBABA_CLOUD_ECS_METADATA_DISABLED once, at import; bulk's chain does not rely on that.

    A fresh interpreter imports the package with the variable unset, then builds chains (never asking
    them, so nothing is contacted) with the switch on and off in the environment bulk is given.
    """
    script = textwrap.dedent(f"""
        import json
        from bulk.credentials import ChainCredentials
        def kinds(flag):
            chain = ChainCredentials(environ={{"HOME": {str(tmp_path)!r}, "ALIBABA_CLOUD_ECS_METADATA_DISABLED": flag}})
            return [type(provider).__name__ for _, provider in chain._providers]
        print(json.dumps({{"on": kinds("true"), "off": kinds("false")}}))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
    done = subprocess.run([sys.executable, "-c", script], check=False, env=env, capture_output=True, text=True,
                          timeout=30)
    chains = json.loads(done.stdout)
    assert "EcsRamRoleCredentialsProvider" not in chains["on"]
    assert "EcsRamRoleCredentialsProvider" in chains["off"]  # the switch, not the package, made the difference


def test_an_access_key_in_the_environment_needs_no_provider_chain(tmp_path: Path) -> None:
    """The chain after the environment is built only when the environment has no AccessKey.

    A fresh interpreter: with a key in its environment, loading credentials and asking them
    twice never imports the official package (its import is a tenth of a second of every
    run); once the key is gone, the same source builds the chain and asks it.
    """
    script = textwrap.dedent(f"""
        import asyncio, json, sys
        from bulk.credentials import CredentialsError, load_credentials
        env = {{"HOME": {str(tmp_path)!r}, "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
                "ALIBABA_CLOUD_ACCESS_KEY_ID": "AK-env", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s-env"}}
        async def main():
            source = await load_credentials(environ=env)
            await source.get()
            before = "alibabacloud_credentials" in sys.modules
            del env["ALIBABA_CLOUD_ACCESS_KEY_ID"], env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"]
            try:
                await source.get()
            except CredentialsError as exc:
                return before, "alibabacloud_credentials" in sys.modules, str(exc)
        print(json.dumps(asyncio.run(main())))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
    done = subprocess.run([sys.executable, "-c", script], check=True, env=env, capture_output=True, text=True,
                          timeout=30)
    before, after, message = json.loads(done.stdout)
    assert before is False
    # Then the chain was built and asked: its links are named in the failure.
    assert after is True and "credentials file" in message


async def test_a_source_that_loses_its_credentials_raises_the_same_clear_error(tmp_path: Path) -> None:
    env = bare_env(tmp_path, ALIBABA_CLOUD_ACCESS_KEY_ID="AK-env", ALIBABA_CLOUD_ACCESS_KEY_SECRET="gone-secret")
    source = await load_credentials(environ=env)
    del env["ALIBABA_CLOUD_ACCESS_KEY_ID"], env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"]
    with pytest.raises(CredentialsError) as info:
        await source.get()
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in assert_clean(info.value, "gone-secret")


# -- what may be printed ------------------------------------------------------------------------


def test_no_secret_in_repr_and_a_stable_short_fingerprint() -> None:
    creds = Credentials("AKID", "very-secret-value", "token-value")
    for shown in (repr(creds), str(creds), f"{creds}"):
        assert "AKID" in shown and "very-secret-value" not in shown and "token-value" not in shown
    assert creds.fingerprint == f"AKID/{fingerprint('very-secret-value')}"
    assert fingerprint("secret") == "fp:2bb80d53"  # the same in every run and on every machine
    assert fingerprint("x") == fingerprint("x") != fingerprint("y")
    assert len(fingerprint("very-secret-value" * 100)) == len("fp:") + 8


# -- many accounts: one source per aliyun CLI profile -------------------------------------------


def test_profile_names_are_the_cli_configs(tmp_path: Path) -> None:
    env = bare_env(tmp_path)
    assert profile_names(environ=env) == frozenset()  # no config file: no profiles, not an error
    write_cli_config(tmp_path, ACCOUNTS_CONFIG)
    assert profile_names(environ=env) == {"acct-a", "acct-b", "acct-c"}
    assert profile_names(tmp_path / ".aliyun" / "config.json") == {"acct-a", "acct-b", "acct-c"}
    assert cli_config_path(env) == tmp_path / ".aliyun" / "config.json"
    write_cli_config(tmp_path, {"profiles": [{"name": "x"}, {"mode": "AK"}, {"name": ""}, {"name": 3}]})
    assert profile_names(environ=env) == {"x"}
    write_cli_config(tmp_path, {"current": ""})
    assert profile_names(environ=env) == frozenset()


def test_profile_names_from_the_real_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cli_config(tmp_path, ACCOUNTS_CONFIG)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert profile_names() == {"acct-a", "acct-b", "acct-c"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"profiles": [{"name": "a", "access_key_secret": "' + PROFILE_SECRET + '"', "is not valid JSON \\(line 1\\)"),
        (b'{"profiles": [], "x": "\xff' + PROFILE_SECRET.encode() + b'"}', "is not a JSON object in UTF-8"),
        ('["' + PROFILE_SECRET + '"]', "is not a JSON object in UTF-8"),
        ('{"profiles": {"a": "' + PROFILE_SECRET + '"}}', "has no list of profiles"),
        ('{"profiles": ["' + PROFILE_SECRET + '"]}', "has no list of profiles"),
        (None, "cannot read the aliyun CLI config .*: Is a directory"),
    ],
    ids=["broken-json", "not-utf8", "not-an-object", "profiles-not-a-list", "profile-not-an-object", "directory"],
)
def test_a_broken_cli_config_is_named_never_shown(tmp_path: Path, content: str | bytes | None, message: str) -> None:
    path = tmp_path / ".aliyun" / "config.json"
    path.parent.mkdir()
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(CredentialsError, match=message) as info:
        profile_names(environ=bare_env(tmp_path))
    assert str(path) in assert_clean(info.value, PROFILE_SECRET)


async def test_one_cached_source_per_profile_and_the_runs_own_for_none(tmp_path: Path) -> None:
    write_cli_config(tmp_path, ACCOUNTS_CONFIG)
    run = StaticCredentials(Credentials("LTAIrun", "secret-run"))
    sources = ProfileSources(default=run, environ=bare_env(tmp_path))
    assert sources.source(None) is run
    assert sources.source("acct-a") is sources.source("acct-a") is not sources.source("acct-b")
    assert await sources.source("acct-a").get() == Credentials("LTAIacctA", "secret-a")
    assert await sources.source("acct-b").get() == Credentials("STS.acctB", "secret-b", "token-b")
    # A profile that is not there fails when asked, naming it, as --profile does.
    with pytest.raises(CredentialsError, match="profile 'gone'") as info:
        await sources.source("gone").get()
    assert_clean(info.value, "secret-a", "secret-b", WRONG_SECRET)


async def test_each_profile_signs_with_its_own_key_against_the_simulator(tmp_path: Path) -> None:
    """Over real sockets: AK and StsToken profiles are accepted; a wrong secret is the service's to refuse."""
    write_cli_config(tmp_path, ACCOUNTS_CONFIG)
    sim = Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET, "LTAIacctA": "secret-a",
                                           "STS.acctB": "secret-b", "LTAIacctC": "the-real-secret-c"}))
    sources = ProfileSources(default=await load_credentials(), environ=bare_env(tmp_path))
    async with sim:
        outcomes = {}
        for profile in (None, "acct-a", "acct-b", "acct-c"):
            assert (await sources.source(profile).get()).access_key_secret != ""  # every source works locally
            async with LiveClient(credentials=sources.source(profile), endpoint=sim.url) as client:
                outcomes[profile] = await client.call("DescribeLiveSnapshotNotifyConfig",
                                                      {"DomainName": "a.example.com"})
        by_key = sim.stats()["by_access_key"]
    assert [isinstance(outcomes[p], Success) for p in (None, "acct-a", "acct-b")] == [True, True, True]
    refused = outcomes["acct-c"]
    assert isinstance(refused, Failure) and refused.code == "SignatureDoesNotMatch" and refused.fatal
    assert WRONG_SECRET not in refused.message
    assert by_key == {TEST_AK_ID: 1, "LTAIacctA": 1, "STS.acctB": 1}  # a refused signature is no one's arrival
