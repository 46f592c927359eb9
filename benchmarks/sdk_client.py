"""The reference side of the throughput benchmark: Alibaba's official async SDK client.

    python benchmarks/sdk_client.py ENDPOINT DOMAINS.csv CONCURRENCY

Adds a snapshot callback for every domain of the file with
``add_live_snapshot_notify_config_async``, CONCURRENCY calls at a time, and
prints how many succeeded. Run as its own process, like bulk, so that both
sides pay for interpreter start and imports.
"""

from __future__ import annotations

import asyncio
import os
import sys

from alibabacloud_live20161101 import models
from alibabacloud_live20161101.client import Client
from alibabacloud_tea_openapi.models import Config
from darabonba.runtime import RuntimeOptions


async def main(endpoint: str, path: str, concurrency: int) -> int:
    client = Client(Config(
        access_key_id=os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"],
        access_key_secret=os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
        endpoint=endpoint, protocol="http", region_id="cn-shanghai",
    ))
    with open(path) as f:
        domains = [line.strip() for line in f.readlines()[1:] if line.strip()]
    gate = asyncio.Semaphore(concurrency)
    runtime = RuntimeOptions(autoretry=False)

    async def add(domain: str) -> bool:
        async with gate:
            request = models.AddLiveSnapshotNotifyConfigRequest(
                domain_name=domain, notify_url="https://cb.example.com/x", region_id="cn-shanghai"
            )
            await client.add_live_snapshot_notify_config_with_options_async(request, runtime)
            return True

    results = await asyncio.gather(*(add(d) for d in domains), return_exceptions=True)
    ok = sum(1 for r in results if r is True)
    print(ok)
    return 0 if ok == len(domains) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1].removeprefix("http://"), sys.argv[2], int(sys.argv[3]))))
