"""The floor side of the throughput benchmark: bare aiohttp, signed with bulk's own signer.

    python benchmarks/bare_client.py http://127.0.0.1:PORT DOMAINS.csv CONCURRENCY

Sends, for every domain of the file, the call ``bulk run`` sends for it
(AddLiveSnapshotNotifyConfig with the same NotifyUrl and RegionId, signed
with ``bulk.signing.sign``, a fresh nonce and time per call) from one
keep-alive ``aiohttp.ClientSession``, CONCURRENCY at a time (asyncio.Semaphore
+ gather, as ``sdk_client.py``). Nothing else: no pacing, checkpoint, retry,
log or answer parsing beyond the status, and the collector set as bulk's CLI
sets it (``bulk.cli.common.main``). What Python and aiohttp can do on this
machine with bulk's signing. Prints how many succeeded and exits 1
unless all did. Run as its own process, like bulk, so that every side pays
for interpreter start and imports. Credentials come from the environment the
benchmark sets.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from bulk.credentials import Credentials
from bulk.signing import sign

ACTION = "AddLiveSnapshotNotifyConfig"
NOTIFY_URL = "https://cb.example.com/x"
REGION = "cn-shanghai"  # bulk's client adds it to every call


async def main(endpoint: str, domains: list[str], concurrency: int) -> int:
    creds = Credentials(os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"], os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"])
    host = urlsplit(endpoint).netloc
    base = endpoint.rstrip("/") + "/?"
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:

        async def add(domain: str) -> int:
            async with gate:
                request = sign("v3", ACTION, {"DomainName": domain, "NotifyUrl": NOTIFY_URL, "RegionId": REGION},
                               creds, host=host)
                url = URL(base + request.query, encoded=True)
                async with session.request(request.method, url, headers=request.headers) as response:
                    await response.read()
                    return response.status

        results = await asyncio.gather(*(add(d) for d in domains), return_exceptions=True)
    failed = [r for r in results if r != 200]
    first = failed[0] if failed else None
    shown = type(first).__name__ if isinstance(first, BaseException) else f"HTTP {first}"
    print(f"{len(domains) - len(failed)} ok" + (f", first error: {shown}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    gc.set_threshold(10_000, 10, 10)  # as bulk's CLI: the floor must not pay what bulk does not
    with open(sys.argv[2]) as f:
        names = [line.strip() for line in f.readlines()[1:] if line.strip()]
    sys.exit(asyncio.run(main(sys.argv[1], names, int(sys.argv[3]))))
