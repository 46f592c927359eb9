"""Where AccessKeys come from: the Alibaba Cloud default credential chain.

    >>> creds = Credentials("LTAI-test", "secret")
    >>> creds.fingerprint  # safe to print; the secret never is
    'LTAI-test/fp:2bb80d53'

The chain (environment variables, the aliyun CLI profile, RAM roles) is the
official ``alibabacloud-credentials`` package; bulk only adapts it to an async
``CredentialSource`` that is asked again for every call, so an STS token that
renews mid-run is picked up.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "ChainCredentials",
    "CredentialSource",
    "Credentials",
    "CredentialsError",
    "StaticCredentials",
    "fingerprint",
    "load_credentials",
]


def fingerprint(secret: str) -> str:
    """A short, stable stand-in for a secret in logs and messages."""
    return "fp:" + hashlib.sha256(secret.encode()).hexdigest()[:8]


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)

    @property
    def fingerprint(self) -> str:
        return f"{self.access_key_id}/{fingerprint(self.access_key_secret)}"


class CredentialsError(RuntimeError):
    """No usable credentials; the message says what to set."""


class CredentialSource(Protocol):
    async def get(self) -> Credentials: ...


@dataclass(frozen=True, slots=True)
class StaticCredentials:
    """A fixed AccessKey, for tests and for the simulator's own clients."""

    credentials: Credentials

    async def get(self) -> Credentials:
        return self.credentials


_HELP = (
    "set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET "
    "(and ALIBABA_CLOUD_SECURITY_TOKEN for STS), or name an aliyun CLI profile with --profile"
)


class ChainCredentials:
    """The official default chain (or one aliyun CLI profile), asked on every call.

    The chain's providers cache and refresh what they fetch (STS tokens from a
    RAM role renew before they expire), so asking each time is cheap and
    always current.
    """

    __slots__ = ("_client", "_profile")

    def __init__(self, *, profile: str | None = None) -> None:
        # Imported here: the package reads its environment (including
        # ALIBABA_CLOUD_ECS_METADATA_DISABLED) when first imported.
        from alibabacloud_credentials.client import Client
        from alibabacloud_credentials.provider.cli_profile import CLIProfileCredentialsProvider

        self._profile = profile
        self._client = Client(provider=CLIProfileCredentialsProvider(profile_name=profile)) if profile else Client()

    async def get(self) -> Credentials:
        where = f"profile {self._profile!r}" if self._profile else "the default credential chain"
        try:
            model = await self._client.get_credential_async()
        except Exception as exc:  # the chain raises many kinds; none may leak a secret
            raise CredentialsError(f"no usable credentials from {where} ({type(exc).__name__}); {_HELP}") from None
        if not model.access_key_id or not model.access_key_secret:
            raise CredentialsError(f"incomplete credentials from {where}; {_HELP}")
        return Credentials(model.access_key_id, model.access_key_secret, model.security_token or None)


async def load_credentials(*, profile: str | None = None) -> CredentialSource:
    """The credential source for a run, checked once before any call (CredentialsError if unusable)."""
    source = ChainCredentials(profile=profile)
    await source.get()
    return source
