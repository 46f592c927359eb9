"""Where a receiver listens, and what it refuses to expose in clear.

    listen = Listen(host="0.0.0.0", port=8080, tls=context)
    listen.check(callback_hosts=["cb.example.com"], admin_token=True)   # ValueError if unsafe

Loopback needs nothing more. Beyond it, the callback port needs the host the
service signs (never taken from the request) and TLS, or a TLS terminator said
to be in front; an admin listener beyond loopback needs a token.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from .signature import host_of

__all__ = ["LOOPBACK", "Listen"]

_LOOPBACK = frozenset({"127.0.0.1", "::1", "[::1]", "localhost"})


def _is_loopback(host: str) -> bool:
    return host_of(host) in _LOOPBACK


@dataclass(frozen=True, slots=True)
class Listen:
    """Where a receiver listens: the callback port, the admin listener, TLS."""

    host: str = "127.0.0.1"
    port: int = 0
    admin_host: str = "127.0.0.1"
    #: None: no admin listener
    admin_port: int | None = 0
    #: serve the callback port over TLS
    tls: ssl.SSLContext | None = None
    #: the callback port listens beyond loopback without TLS because a TLS terminator is in front
    behind_tls_proxy: bool = False

    def check(self, *, callback_hosts: Sequence[str], admin_token: bool) -> None:
        """Refuse a set-up that exposes callbacks or admin paths in clear to the network (ValueError)."""
        if _is_loopback(self.host):
            return
        if not callback_hosts:
            raise ValueError(f"listening on {self.host} needs the callback host (--callback-host): the host "
                             "the service signs, from your NotifyUrl")
        if self.tls is None and not self.behind_tls_proxy:
            raise ValueError(f"listening on {self.host} without TLS: give --tls-cert and --tls-key, or say that a "
                             "TLS terminator is in front with --behind-tls-proxy")
        if self.admin_port is not None and not _is_loopback(self.admin_host) and not admin_token:
            raise ValueError(f"the admin listener on {self.admin_host} needs a token (--admin-token-file)")


#: a receiver's default listeners: both on loopback, on free ports
LOOPBACK = Listen()
