"""The reference side of the throughput benchmark: Alibaba's official async SDK client.

    python benchmarks/sdk_client.py http://127.0.0.1:PORT DOMAINS.csv CONCURRENCY

Calls ``add_live_snapshot_notify_config_async`` for every domain of the file,
CONCURRENCY at a time (asyncio.Semaphore + gather), prints how many succeeded
and exits 1 unless all did. Run as its own process, like bulk, so that both
sides pay for interpreter start and imports. Credentials come from the
environment the benchmark sets.
"""

from __future__ import annotations

import asyncio
import os
import sys

from alibabacloud_live20161101.client import Client
from alibabacloud_live20161101.models import AddLiveSnapshotNotifyConfigRequest
from alibabacloud_tea_openapi.models import Config


async def main(endpoint: str, domains: list[str], concurrency: int) -> int:
    client = Client(Config(
        access_key_id=os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"],
        access_key_secret=os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
        endpoint=endpoint.removeprefix("http://"), protocol="http", region_id="cn-shanghai",
    ))
    gate = asyncio.Semaphore(concurrency)

    async def add(domain: str) -> None:
        async with gate:
            await client.add_live_snapshot_notify_config_async(
                AddLiveSnapshotNotifyConfigRequest(domain_name=domain, notify_url="https://cb.example.com/x")
            )

    results = await asyncio.gather(*(add(d) for d in domains), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    print(f"{len(domains) - len(errors)} ok" + (f", first error: {type(errors[0]).__name__}" if errors else ""))
    return 1 if errors else 0


if __name__ == "__main__":
    with open(sys.argv[2]) as f:
        names = [line.strip() for line in f.readlines()[1:] if line.strip()]
    sys.exit(asyncio.run(main(sys.argv[1], names, int(sys.argv[3]))))
