"""Where AccessKeys come from: the Alibaba Cloud default credential chain.

    source = await load_credentials()            # or load_credentials(profile="prod")
    creds = await source.get()                   # asked again before every call
    print(creds.fingerprint)                     # 'LTAI5t.../fp:2bb80d53': never the secret

    accounts = ProfileSources(default=source)    # many accounts in one run
    names = profile_names()                      # what a row's Profile may name
    creds = await accounts.source("prod").get()  # one source per profile, made once

The chain is the official ``alibabacloud-credentials`` one, provider for
provider and in the same order: environment variables, OIDC/RRSA, the aliyun
CLI's ``~/.aliyun/config.json``, ``~/.alibabacloud/credentials.ini``, the ECS
RAM role, a credentials URI. ``profile=`` takes one aliyun CLI profile instead.
It is asked for every call, so an STS token that renews mid-run is picked up.
``ProfileSources`` holds one such source per aliyun CLI profile, for runs
whose rows name the profile (the account) that sends them.
Two deliberate differences: the environment is read when asked, not once when
the package is imported; and half an AccessKey (in the environment or in a
profile) is an error, never completed from somewhere else.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .errors import BulkError

__all__ = [
    "ChainCredentials",
    "CredentialSource",
    "Credentials",
    "CredentialsError",
    "ProfileSources",
    "StaticCredentials",
    "cli_config_path",
    "fingerprint",
    "load_credentials",
    "profile_names",
]


def fingerprint(secret: str) -> str:
    """A short, stable stand-in for a secret in logs and messages."""
    return "fp:" + hashlib.sha256(secret.encode()).hexdigest()[:8]


@dataclass(frozen=True, slots=True)
class Credentials:
    """An AccessKey (and STS token); the secret and the token stay out of the repr."""

    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)

    @property
    def fingerprint(self) -> str:
        """The AccessKey id and a fingerprint of its secret: how these credentials are shown."""
        return f"{self.access_key_id}/{fingerprint(self.access_key_secret)}"


class CredentialsError(BulkError, RuntimeError):
    """No usable credentials; the message says what to set."""


class CredentialSource(Protocol):
    """Whatever gives the credentials to sign the next call with."""

    async def get(self) -> Credentials:
        """The credentials for the next call (CredentialsError when none can be had)."""


@dataclass(frozen=True, slots=True)
class StaticCredentials:
    """A fixed AccessKey, for tests and for the simulator's own clients."""

    credentials: Credentials

    async def get(self) -> Credentials:
        """The same credentials, every time."""
        return self.credentials


_ID, _SECRET, _TOKEN = "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN"
_HELP = f"set {_ID} and {_SECRET} (and {_TOKEN} for STS), or name an aliyun CLI profile with --profile"


# aliyun CLI profile modes whose AccessKey is written in the profile itself.
_STATIC_KEY_MODES = frozenset({"AK", "StsToken", "RamRoleArn"})


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").lower() == "true"


def _from_environment(environ: Mapping[str, str], last: Credentials | None = None) -> Credentials | None:
    """The first link of the chain, read when asked so that a renewed token is seen.

    ``last`` (what the previous call found) is returned again while the environment still holds it.
    """
    key_id, secret = environ.get(_ID, ""), environ.get(_SECRET, "")
    if key_id and secret:
        token = environ.get(_TOKEN) or None
        if (last is not None and last.access_key_id == key_id and last.access_key_secret == secret
                and last.security_token == token):
            return last
        return Credentials(key_id, secret, token)
    if key_id or secret:
        # Half an AccessKey is a broken export; falling through to a profile
        # could quietly act on another account.
        have, lack = (_ID, _SECRET) if key_id else (_SECRET, _ID)
        raise CredentialsError(f"{have} is set but {lack} is empty; {_HELP}")
    return None


def _default_chain(environ: Mapping[str, str], home: Path) -> list[tuple[str, Any]]:
    """The package's ``DefaultCredentialsProvider`` after its environment link, as (label, provider).

    That class reads the environment once, when the package is imported: its
    environment link would never see a renewed token, and its ECS switch would
    miss a variable set later. Built here from the environment given, with
    every setting passed explicitly.
    """
    from alibabacloud_credentials.provider import (
        CLIProfileCredentialsProvider,
        EcsRamRoleCredentialsProvider,
        OIDCRoleArnCredentialsProvider,
        ProfileCredentialsProvider,
        URLCredentialsProvider,
    )

    profile = environ.get("ALIBABA_CLOUD_PROFILE") or None
    chain: list[tuple[str, Any]] = []
    role, provider_arn, token_file = (environ.get(n) for n in (
        "ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "ALIBABA_CLOUD_OIDC_TOKEN_FILE"))
    if role and provider_arn and token_file:
        chain.append(("OIDC role", OIDCRoleArnCredentialsProvider(
            role_arn=role, oidc_provider_arn=provider_arn, oidc_token_file_path=token_file,
            role_session_name=environ.get("ALIBABA_CLOUD_ROLE_SESSION_NAME") or None,
            sts_region_id=environ.get("ALIBABA_CLOUD_STS_REGION") or None,
            enable_vpc=_flag(environ, "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED"),
        )))
    if not _flag(environ, "ALIBABA_CLOUD_CLI_PROFILE_DISABLED"):
        config = home / ".aliyun" / "config.json"
        chain.append((f"aliyun CLI config {config}",
                      CLIProfileCredentialsProvider(profile_name=profile, profile_file=str(config))))
    ini = environ.get("ALIBABA_CLOUD_CREDENTIALS_FILE") or str(home / ".alibabacloud" / "credentials.ini")
    chain.append((f"credentials file {ini}",
                  ProfileCredentialsProvider(profile_file=ini, profile_name=profile or "default")))
    # The metadata service exists only on ECS; anywhere else each attempt waits for a timeout.
    if not _flag(environ, "ALIBABA_CLOUD_ECS_METADATA_DISABLED"):
        try:
            chain.append(("ECS RAM role", EcsRamRoleCredentialsProvider(
                role_name=environ.get("ALIBABA_CLOUD_ECS_METADATA") or None,
                disable_imds_v1=_flag(environ, "ALIBABA_CLOUD_IMDSV1_DISABLED"),
            )))
        except ValueError:  # the package refuses it when the flag was set at its import
            pass
    if uri := environ.get("ALIBABA_CLOUD_CREDENTIALS_URI"):
        chain.append(("ALIBABA_CLOUD_CREDENTIALS_URI", URLCredentialsProvider(uri=uri)))
    return chain


def _home(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("HOME") or os.path.expanduser("~"))


def cli_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The aliyun CLI's ``~/.aliyun/config.json``, HOME taken from ``environ`` (the process's by default)."""
    return _home(os.environ if environ is None else environ) / ".aliyun" / "config.json"


def profile_names(config: Path | None = None, *, environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The profile names in the aliyun CLI config (``cli_config_path(environ)`` unless given).

    No file: no names. A file that cannot be read or is not the CLI's JSON
    is a CredentialsError that says where, never what it holds.
    """
    path = cli_config_path(environ) if config is None else config
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return frozenset()
    except OSError as exc:
        raise CredentialsError(f"cannot read the aliyun CLI config {path}: {exc.strerror}") from None
    try:
        profiles = json.loads(data).get("profiles") or []
    except json.JSONDecodeError as exc:
        raise CredentialsError(f"the aliyun CLI config {path} is not valid JSON (line {exc.lineno})") from None
    except (UnicodeDecodeError, AttributeError):
        raise CredentialsError(f"the aliyun CLI config {path} is not a JSON object in UTF-8") from None
    if not isinstance(profiles, list) or not all(isinstance(p, dict) for p in profiles):
        raise CredentialsError(f"the aliyun CLI config {path} has no list of profiles")
    return frozenset(p["name"] for p in profiles if isinstance(p.get("name"), str) and p["name"])


def _half_key_in_profile(config: Path, name: str) -> bool:
    """Whether the named profile stores an AccessKey with an empty half.

    The package's static provider fills an empty half from the environment it
    saw at import, which would pair this profile's key with another one's.
    """
    try:
        profiles = json.loads(config.read_text(encoding="utf-8")).get("profiles") or []
    except (OSError, ValueError, AttributeError):
        return False  # a missing or unreadable file is the provider's to report
    return any(
        isinstance(p, dict) and p.get("name") == name and p.get("mode") in _STATIC_KEY_MODES
        and not (p.get("access_key_id") and p.get("access_key_secret"))
        for p in profiles
    )


class ChainCredentials:
    """The official default chain (or one aliyun CLI profile), asked on every call.

    The environment is read on every call; the other providers cache and
    refresh what they fetch themselves (STS tokens from a RAM role renew before
    they expire). As in the official chain, the first provider that answers is
    the one asked from then on.
    """

    __slots__ = ("_chain", "_config", "_environ", "_found", "_last", "_lock", "_profile")

    def __init__(self, *, profile: str | None = None, environ: Mapping[str, str] | None = None) -> None:
        # The package logs refresh failures on a stderr handler of its own (and, at debug level,
        # the credentials it fetched): bulk reports each failure itself, by kind only.
        logging.getLogger("credentials").disabled = True
        self._environ = os.environ if environ is None else environ
        self._profile = profile
        self._last: tuple[str, Any] | None = None
        #: what the environment held at the last call: handed out again, not rebuilt, while it is unchanged
        self._found: Credentials | None = None
        # One provider lookup at a time: the package's async refresh takes a threading lock with a
        # blocking 5 s wait, so two refreshes at once would freeze the event loop for that long.
        self._lock = asyncio.Lock()
        self._config = _home(self._environ) / ".aliyun" / "config.json"
        self._chain: list[tuple[str, Any]] | None = None
        if profile:
            from alibabacloud_credentials.provider import CLIProfileCredentialsProvider

            self._chain = [(f"aliyun CLI profile {profile!r} in {self._config}",
                            CLIProfileCredentialsProvider(profile_name=profile, profile_file=str(self._config)))]

    @property
    def _providers(self) -> list[tuple[str, Any]]:
        # Built when first needed: with an AccessKey in the environment it never is, and a run
        # does without importing the package (a tenth of a second at start).
        if self._chain is None:
            self._chain = _default_chain(self._environ, _home(self._environ))
        return self._chain

    async def get(self) -> Credentials:
        """The environment's AccessKey, else the chain's (only the profile's when one is named).

        CredentialsError says why each link failed, by kind only.
        """
        failures = []
        if self._profile is None:
            if (found := _from_environment(self._environ, self._found)) is not None:
                self._found = found
                return found
            failures.append(f"environment: {_ID} not set")
        elif self._last is None and _half_key_in_profile(self._config, self._profile):
            raise CredentialsError(f"aliyun CLI profile {self._profile!r} in {self._config} has an empty "
                                   f"access_key_id or access_key_secret; {_HELP}")
        async with self._lock:
            for label, provider in [self._last] if self._last is not None else self._providers:
                try:
                    got = await provider.get_credentials_async()
                    creds = Credentials(got.get_access_key_id() or "", got.get_access_key_secret() or "",
                                        got.get_security_token() or None)
                except Exception as exc:  # noqa: BLE001  (providers raise many kinds; only the kind is safe to repeat)
                    failures.append(f"{label}: {type(exc).__name__}")
                    continue
                if creds.access_key_id and creds.access_key_secret:
                    self._last = (label, provider)
                    return creds
                failures.append(f"{label}: empty AccessKey")
        raise CredentialsError(f"no usable credentials ({'; '.join(failures)}); {_HELP}")


async def load_credentials(
    *, profile: str | None = None, environ: Mapping[str, str] | None = None
) -> CredentialSource:
    """The credential source for a run, checked once before any call (CredentialsError if unusable)."""
    source = ChainCredentials(profile=profile, environ=environ)
    await source.get()
    return source


class ProfileSources:
    """One credential source per aliyun CLI profile, made when first asked for and then kept.

    Each is ``ChainCredentials(profile=name)``: every mode the official
    package reads from the CLI config (AK, StsToken, RamRoleArn,
    ChainableRamRoleArn, EcsRamRole, OIDC, CloudSSO), and RAM-role tokens
    renewed by their own provider, once per profile. ``None`` (a row that
    names no profile) is the run's ``default`` source. Nothing is read
    until a source is asked for credentials.
    """

    __slots__ = ("_default", "_environ", "_sources")

    def __init__(self, *, default: CredentialSource | None = None, environ: Mapping[str, str] | None = None) -> None:
        self._default = default
        self._environ = environ
        self._sources: dict[str, ChainCredentials] = {}

    def source(self, profile: str | None) -> CredentialSource:
        """The source for ``profile`` (None: the run's own, CredentialsError if it has none)."""
        if profile is None:
            if self._default is None:
                raise CredentialsError("no credentials for the rows that name no profile")
            return self._default
        found = self._sources.get(profile)
        if found is None:
            found = self._sources[profile] = ChainCredentials(profile=profile, environ=self._environ)
        return found
