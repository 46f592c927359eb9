"""The receiver's admin listener: metrics, stats, drain answers and probes, apart from the callback port.

    bulk callback serve --keys keys/ --bind 0.0.0.0 --callback-host cb.example.com --behind-tls-proxy \\
        --admin-bind 127.0.0.1:8081 --admin-token-file /run/secrets/bulk-admin-token
    curl -H "Authorization: Bearer $(cat /run/secrets/bulk-admin-token)" http://127.0.0.1:8081/metrics

``GET /metrics`` (Prometheus text), ``GET /_bulk/stats`` (JSON),
``GET /_bulk/drain?generation=G&window=SECONDS`` (what ``bulk callback
drain`` asks), ``GET /_bulk/generations`` (the loaded keys files and their
SHA-256, what ``bulk rotate --require-receivers`` asks), ``GET /drain.html`` (accepted callbacks per
generation over time, a page: ``bulk.callbacks.series``), ``GET /healthz`` (the process answers) and
``GET /readyz`` (200 once keys are loaded and the callback port listens). The callback port
serves callbacks only: stats name every domain and when it last called
back, which is nobody else's business. With a token, every path but the two
probes needs ``Authorization: Bearer <token>`` (a Kubernetes probe can
reach them without one); without a token, the admin listener stays on
loopback. The token is compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import os
import stat
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Protocol

import orjson
from aiohttp import web

from .drain import DrainReport, UnknownGeneration
from .metrics import CONTENT_TYPE
from .series import Snapshot, drain_page

__all__ = ["ADMIN_PORT", "TOKEN_ENV", "Admin", "Observed", "read_token"]

#: the admin listener's default port (on 127.0.0.1)
ADMIN_PORT = 8081
#: where ``bulk callback drain`` finds the admin token when no file is given
TOKEN_ENV = "BULK_ADMIN_TOKEN"
_OPEN_PATHS = frozenset({"/healthz", "/readyz"})


class Observed(Protocol):
    """What the admin listener asks of a receiver."""

    @property
    def ready(self) -> bool:
        """Keys loaded and the callback port listening (``/readyz``)."""
        ...

    def stats(self) -> dict[str, object]:
        """Counts and state for ``/_bulk/stats``."""
        ...

    def generations(self) -> list[dict[str, object]]:
        """The loaded keys files with their SHA-256 (``/_bulk/generations``)."""
        ...

    def metrics(self) -> str:
        """The Prometheus text for ``/metrics``."""
        ...

    def drain(self, generation: str, window: float) -> DrainReport:
        """Whether ``generation`` signed no callback within ``window`` seconds (``/_bulk/drain``)."""
        ...

    def drain_series(self) -> Snapshot:
        """Accepted callbacks per generation over time (``/drain.html``)."""
        ...


def read_token(path: Path | None, *, environ: Mapping[str, str] = os.environ) -> str | None:
    """The admin token from a file (first line) or, without one, from ``BULK_ADMIN_TOKEN``; None if neither."""
    if path is None:
        return environ.get(TOKEN_ENV, "").strip() or None
    try:
        with path.open("rb") as f:  # one descriptor for the mode check and the read: no swap in between
            mode = os.fstat(f.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ValueError(f"the admin token file {path} is accessible by group or others "
                                 f"(mode {stat.S_IMODE(mode):04o}); it holds a secret: run chmod 600 {path}")
            token = f.read().decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8"
        raise ValueError(f"cannot read the admin token file {path}: {reason}") from None
    if not token:
        raise ValueError(f"the admin token file {path} is empty")
    return token


class Admin:
    """Answers the admin paths for one receiver."""

    __slots__ = ("_receiver", "_token")

    def __init__(self, receiver: Observed, *, token: str | None = None) -> None:
        self._receiver = receiver
        self._token = f"Bearer {token}".encode() if token else None

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """The admin listener's one handler."""
        route = self._routes.get(request.path)
        if route is None:
            return web.Response(status=404, text="not found")
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="method not allowed", headers={"Allow": "GET"})
        if self._token is not None and request.path not in _OPEN_PATHS:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, self._token):
                return web.Response(status=401, text="unauthorized", headers={"WWW-Authenticate": "Bearer"})
        return await route(self, request)

    async def _healthz(self, request: web.BaseRequest) -> web.Response:
        return web.Response(text="ok")

    async def _readyz(self, request: web.BaseRequest) -> web.Response:
        if self._receiver.ready:
            return web.Response(text="ready")
        return web.Response(status=503, text="not ready")

    async def _metrics(self, request: web.BaseRequest) -> web.Response:
        return web.Response(body=self._receiver.metrics().encode(), headers={"Content-Type": CONTENT_TYPE})

    async def _stats(self, request: web.BaseRequest) -> web.Response:
        return web.Response(body=orjson.dumps(self._receiver.stats()), content_type="application/json")

    async def _generations(self, request: web.BaseRequest) -> web.Response:
        return web.Response(body=orjson.dumps({"generations": self._receiver.generations()}),
                            content_type="application/json")

    async def _drain(self, request: web.BaseRequest) -> web.Response:
        try:
            window = float(request.query.get("window", "86400"))
            if not window > 0:
                raise ValueError
        except ValueError:
            return _json_error(400, "window must be a positive number of seconds")
        try:
            report = self._receiver.drain(request.query.get("generation", ""), window)
        except UnknownGeneration as exc:
            return _json_error(404, str(exc))
        return web.Response(body=orjson.dumps(report.to_json()), content_type="application/json")

    async def _drain_page(self, request: web.BaseRequest) -> web.Response:
        status, page = await drain_page(self._receiver.drain_series())
        return web.Response(status=status, text=page, content_type="text/html")

    _routes: Mapping[str, Callable[[Admin, web.BaseRequest], Awaitable[web.Response]]] = {
        "/healthz": _healthz, "/readyz": _readyz, "/metrics": _metrics, "/_bulk/stats": _stats, "/_bulk/drain": _drain,
        "/_bulk/generations": _generations,
        "/drain.html": _drain_page,
    }


def _json_error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"error": message}), content_type="application/json")
