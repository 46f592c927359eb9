"""Whose run a checkpoint holds: the endpoint, the region and the account it was started with.

    identity = await run_identity(client, profile="prod", region="cn-shanghai")
    options = replace(options, identity=identity)    # prepare() records it, or refuses a resume that differs
    endpoint, region = recorded_connection(meta)     # verify, rollback and run --plan default to these

A rehearsal against the simulator and the real run take the same input, and
so the same checkpoint name: resuming one against the other would mix two
fleets in one record, and a bare ``bulk verify CK`` after a rehearsal would
read production. So the checkpoint records where and as whom its run was
started; a resume that differs is refused (exit 2, naming both), and the
commands that act on a finished run default to its endpoint and region.

The account is never a secret: the aliyun CLI profile's name when the run
took one, else the fingerprint of the AccessKey ID. STS credentials change
their AccessKey ID with every token, so a run made with them records only
that, and any STS credentials may resume it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .checkpoint import CheckpointError
from .credentials import CredentialsError, fingerprint

if TYPE_CHECKING:
    from .client import LiveClient

__all__ = ["STS", "Identity", "IdentityMismatch", "recorded_connection", "run_identity"]

#: the account of a run made with STS credentials: not compared (the AccessKey ID changes with each token)
STS = "STS credentials"
_KEYS = ("endpoint", "region", "account")


class IdentityMismatch(CheckpointError):
    """A resume against another endpoint, region or account than the checkpoint's run."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Where and as whom a run sends: ``account`` None when it is not known before the rows name theirs."""

    endpoint: str
    region: str
    account: str | None = None

    def check(self, meta: Mapping[str, Any], checkpoint: Path) -> dict[str, str]:
        """What to record in ``meta``; IdentityMismatch if the run recorded there differs."""
        mine = {"endpoint": self.endpoint, "region": self.region, "account": self.account}
        for key in _KEYS:
            recorded, given = meta.get(key), mine[key]
            if recorded is None or given is None or recorded == given:
                continue
            raise IdentityMismatch(
                f"checkpoint {checkpoint} belongs to a run with {key} {recorded}, this run has {given}; "
                f"give the run's own --{'profile and credentials' if key == 'account' else key} to resume it, "
                "or start another run with a new --checkpoint"
            )
        return {k: v for k, v in mine.items() if v is not None and meta.get(k) is None}


async def run_identity(client: LiveClient, *, profile: str | None, region: str) -> Identity:
    """The identity of a run that sends with ``client`` (its endpoint), ``region`` and ``profile``."""
    if profile:
        account: str | None = f"profile {profile}"
    else:
        try:
            key_id = await client.access_key_id()
        except CredentialsError:  # the rows name their own profiles, and the run has none of its own
            account = None
        else:
            account = STS if key_id.startswith("STS.") else f"AccessKey {fingerprint(key_id)}"
    return Identity(client.endpoint, region, account)


def recorded_connection(meta: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """The endpoint and region a run recorded (None for one started before runs recorded them)."""
    meta = meta or {}
    endpoint, region = meta.get("endpoint"), meta.get("region")
    return (endpoint if isinstance(endpoint, str) else None), (region if isinstance(region, str) else None)
