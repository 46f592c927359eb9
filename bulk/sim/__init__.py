"""The Live API simulator: a local, stricter stand-in for the service, for rehearsals, demos and tests.

    from bulk.sim import SimConfig, Simulator, StreamsConfig

    config = SimConfig(access_keys={"LTAIdemo": "secret"}, qps=30, seed=7, streams=StreamsConfig(count=20))
    async with Simulator(config) as sim:
        ...                      # point bulk (or an official SDK) at sim.url
        sim.stats()["pace"]      # what the quota saw, per AccessKey and action

A product of its own, with its own opinion of the API: ``constraints``
holds the documented parameter rules and error answers, written from the
documentation and sharing nothing with bulk's validation, so a rule bulk
gets wrong is refused here as the service would refuse it. ``server`` is
the aiohttp application; ``auth`` checks signatures, nonces and timestamps;
``quota`` counts the per-(AccessKey, action) quota and draws seeded faults;
``state`` keeps each action family's per-domain configs; ``streams`` posts
signed snapshot callbacks as live streams would.
"""

from __future__ import annotations

from .auth import parse_access_key, read_access_keys, read_secret
from .config import SimConfig
from .quota import FAULT_KINDS, max_in_window
from .server import Simulator, serve_forever
from .streams import LiveStreams, StreamsConfig, is_loopback, snapshot_body, uptimes

__all__ = [
    "FAULT_KINDS",
    "LiveStreams",
    "SimConfig",
    "Simulator",
    "StreamsConfig",
    "is_loopback",
    "max_in_window",
    "parse_access_key",
    "read_access_keys",
    "read_secret",
    "serve_forever",
    "snapshot_body",
    "uptimes",
]
