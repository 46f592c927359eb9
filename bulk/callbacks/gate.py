"""Have the receivers loaded the new keys? Asked before a rotation sends anything.

    missing = await receivers_missing(["http://10.0.0.5:8081", "http://10.0.0.6:8081"], sha256=digest, token=token)
    if missing:
        print(missing)        # url -> why it does not count as a yes ("has not loaded ...", "cannot be asked: ...")

A domain switched to keys that no receiver holds has every callback
rejected until a receiver gets them. So ``bulk rotate --require-receivers``
asks each receiver's admin listener (``GET /_bulk/generations``) for the
SHA-256 of every keys file it has loaded, and applies only when every one
of them lists the very file it is about to apply. A receiver that cannot be
reached, refuses the token or answers something else counts as a no: a
gate that opens when it cannot look is no gate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiohttp

from ..redact import error_kind

__all__ = ["receivers_missing"]


async def _missing(session: aiohttp.ClientSession, url: str, sha256: str, headers: dict[str, str]) -> str | None:
    """Why ``url`` does not count as having loaded ``sha256``; None when it has."""
    try:
        async with session.get(f"{url.rstrip('/')}/_bulk/generations", headers=headers) as resp:
            if resp.status == 401:
                return ("wants its admin token (--admin-token-file or $BULK_ADMIN_TOKEN)" if not headers
                        else "refused the admin token")
            if resp.status != 200:
                return f"answered HTTP {resp.status}"
            body = await resp.json(content_type=None)
            loaded = {str(g["sha256"]): str(g["name"]) for g in body["generations"]}
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
        return f"cannot be asked: {error_kind(exc)}"
    if sha256 in loaded:
        return None
    return f"has not loaded it (loaded: {', '.join(sorted(loaded.values())) or 'nothing'})"


async def receivers_missing(receivers: Sequence[str], *, sha256: str, token: str | None = None,
                            timeout: float = 10.0) -> dict[str, str]:
    """Receiver URL -> why it has not (or cannot say it has) loaded the keys file of ``sha256``; empty: all have."""
    if not receivers:
        raise ValueError("give at least one receiver URL")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        answers = await asyncio.gather(*(_missing(session, url, sha256, headers) for url in receivers))
    return {url: why for url, why in zip(receivers, answers, strict=True) if why is not None}
