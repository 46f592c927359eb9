"""Shared test set-up: explicit test credentials, no metadata service, loopback only."""

from __future__ import annotations

import os

# Set before anything imports the credential chain: it must never reach the
# ECS metadata address, and it must find these explicit test credentials.
os.environ["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"
os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"] = "LTAItestAccessKey"
os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = "testSecretValue0123456789abcdef"
os.environ.pop("ALIBABA_CLOUD_SECURITY_TOKEN", None)
os.environ.pop("ALIBABA_CLOUD_PROFILE", None)

TEST_AK_ID = os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"]
TEST_AK_SECRET = os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"]


import gc  # noqa: E402
from collections.abc import AsyncIterator, Awaitable, Callable  # noqa: E402
from contextlib import asynccontextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402  (after the environment set-up above)
import pytest_asyncio  # noqa: E402
from aiohttp import web  # noqa: E402
from hypothesis import settings  # noqa: E402

# A property is judged by its examples, not by how fast a busy machine ran them: no per-example deadline.
settings.register_profile("bulk", deadline=None)
settings.load_profile("bulk")

# Engines and simulators run in the test processes as `bulk` runs them, with the collector's thresholds of
# bulk.cli.common.main: at Python's default the youngest generation is collected every few calls.
gc.set_threshold(10_000, 10, 10)


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection built (modules, test items) lives as long as the process: no full collection walks it."""
    gc.freeze()


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test's run state (derived checkpoints, backups, failures files) in its own tmp_path, never in the
    real home: $BULK_STATE_DIR, which the bulk processes a test starts inherit."""
    state = tmp_path / "state"
    monkeypatch.setenv("BULK_STATE_DIR", str(state))
    return state


@asynccontextmanager
async def serving(handle: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    """One handler for every method and path, on a free loopback port: yields ``127.0.0.1:<port>``."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def sim():
    """A running simulator that accepts the test AccessKey, with the service's quota of 30/s."""
    from bulk.sim import SimConfig, Simulator

    simulator = Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=30))
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--chaos-scenarios", type=int, default=120,
                     help="How many seeded scenarios the slow chaos test runs (seeds 0..N-1).")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for name in ("chaos_seeds", "chaos_many_seeds"):
        if name in metafunc.fixturenames:
            if name == "chaos_seeds":  # every scenario kind, twice over: the few seeds `make test` runs
                seeds = metafunc.module.covering_seeds()
            else:
                seeds = list(range(metafunc.config.getoption("--chaos-scenarios")))
            batches = [seeds[i:i + 10] for i in range(0, len(seeds), 10)]
            ids = [",".join(map(str, b)) if name == "chaos_seeds" else f"seeds {b[0]}-{b[-1]}" for b in batches]
            metafunc.parametrize(name, batches, ids=ids)
