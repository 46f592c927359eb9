"""The proxy an endpoint is reached through, from HTTPS_PROXY / HTTP_PROXY / NO_PROXY.

    proxy, headers = proxy_for("https://live.aliyuncs.com/")
    await session.request("POST", url, proxy=proxy, proxy_headers=headers)

The variables mean what they mean to urllib and to aiohttp's ``trust_env``
(lower-case names win, ``NO_PROXY`` lists hosts and domains, ``*`` for all),
and a proxy named without a scheme is an http:// one, as curl takes it. Read
once for a run's single endpoint rather than with ``trust_env``: that reads
the environment and parses ``~/.netrc`` on two worker threads for every call
(which halved the client's calls per second here), and it sends ``~/.netrc``
credentials for the endpoint's host as Basic auth to the service.
"""

from __future__ import annotations

# proxy_bypass_environment is public in the standard library but missing from typeshed's stubs.
from urllib.request import getproxies_environment, proxy_bypass_environment  # type: ignore[attr-defined]

import aiohttp
from yarl import URL

from .errors import UsageError

__all__ = ["proxy_for"]


def proxy_for(url: str) -> tuple[URL | None, dict[str, str] | None]:
    """The proxy for ``url`` and the header its URL's credentials make, or (None, None) to connect directly.

    The credentials come apart from the URL: aiohttp names the proxy's URL in
    some errors. ValueError for a proxy that is not an http:// URL (aiohttp
    speaks plain HTTP to a proxy).
    """
    target = URL(url)
    proxies = getproxies_environment()
    named = proxies.get(target.scheme or "")
    if not named or not target.host or proxy_bypass_environment(target.host, proxies):
        return None, None
    proxy = URL(named if "://" in named else f"http://{named}")
    bare = proxy.with_user(None)  # and no password
    if proxy.scheme != "http" or not proxy.host:
        raise UsageError(f"{target.scheme.upper()}_PROXY={bare} is not an http:// proxy URL (e.g. http://proxy.example.com:3128)")
    if proxy.user is None:
        return bare, None
    return bare, {"Proxy-Authorization": aiohttp.encode_basic_auth(proxy.user, proxy.password or "")}
