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

__all__ = ["Credentials", "CredentialSource", "CredentialsError", "StaticCredentials", "fingerprint"]


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
