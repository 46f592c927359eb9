"""How a simulator behaves: its AccessKeys, quota, latency, faults, state file and streams.

    config = SimConfig(access_keys={"LTAIdemo": "secret"}, qps=30, error_rate=0.05, seed=7)
    async with Simulator(config) as sim:
        sim.config.error_rate = 0     # read at every call: a test may change it mid-run

A plain mutable dataclass, shared by the server, the authenticator (the
accepted AccessKeys) and the fault draws, which all read it live.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .streams import StreamsConfig

__all__ = ["SimConfig"]


@dataclass(slots=True)
class SimConfig:
    """What the simulator accepts, how fast, how it fails, and where it keeps its state."""

    access_keys: dict[str, str]
    qps: float = 30.0
    latency_ms: float = 0.0
    #: standard deviation of a normal distribution around latency_ms, clipped at 0
    latency_jitter_ms: float = 0.0
    #: network jitter before a request arrives: a uniform delay in [0, this] before it is
    #: counted against the quota and stamped, so calls sent evenly can arrive bunched
    arrival_jitter_ms: float = 0.0
    #: total probability of an injected fault per call that passed the quota
    error_rate: float = 0.0
    #: error_rate is split evenly among these; a kind listed twice gets twice the share
    fault_kinds: tuple[str, ...] = ("internal_before", "internal_after", "unavailable", "throttle", "drop")
    #: the codes an injected "throttle" answers with, one after another: Throttling.User (HTTP 400), Throttling (503)
    throttle_codes: tuple[str, ...] = ("Throttling.User",)
    seed: int | None = None
    #: fnmatch patterns (case-insensitive) of domains that do not exist on the account
    missing_domains: tuple[str, ...] = ()
    #: (fnmatch pattern, region), the first match wins: such domains exist only in that region; a call naming
    #: another RegionId (or none) is answered InvalidDomain.NotFound
    domain_regions: tuple[tuple[str, str], ...] = ()
    state_file: Path | None = None
    #: the account's domain list beyond the domains that hold a config: DomainName, and LiveDomainType
    #: (liveVideo, liveEdge), LiveDomainStatus (online, offline, configuring), RegionName, ... (see bulk.sim.state)
    domains: tuple[dict[str, str], ...] = ()
    max_skew_s: float = 900.0
    #: injected faults hit only these actions (empty: every action)
    fault_actions: tuple[str, ...] = ()
    #: actions answered 403 Forbidden.RAM, as when the RAM policy lacks them (a switch tests can flip)
    forbidden_actions: tuple[str, ...] = ()
    #: how many of the latest arrivals ``Simulator.arrivals()`` keeps (the stats' figures count every one)
    arrivals_kept: int = 100_000
    #: live streams posting snapshot callbacks to the configured NotifyUrls (see bulk.sim.streams)
    streams: StreamsConfig | None = None
