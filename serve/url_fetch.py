"""Fetch an image a request names by http(s) URL, without letting requests reach inside the network.

URL fetching is off unless ``limits.allow_url_fetch`` is set. When on, a URL
is fetched only if **every** address its host resolves to is public: loopback,
private (RFC 1918, ULA), link-local (cloud metadata at 169.254.169.254),
shared (100.64/10), multicast, reserved and unspecified addresses are refused,
IPv4 inside IPv6 (mapped, 6to4, Teredo) included. The connection then goes
to the address that was checked, not to a second lookup (a DNS answer that
changes between check and connect, "DNS rebinding", cannot redirect it), with
the original host in ``Host`` and in TLS SNI/certificate checks. Redirects are
followed by hand, at most ``max_redirects``, and each target is checked the
same way. The body is read up to ``max_bytes`` and the whole fetch has one
wall-clock limit. Proxies from the environment are ignored: a proxy would
connect on our behalf to whatever address it resolves.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable

from docextract.errors import InputError

__all__ = ["AddressPolicy", "UrlFetcher", "is_public_address"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Decides whether a resolved address may be connected to.
AddressPolicy = Callable[[IPAddress], bool]

_REDIRECTS = (301, 302, 303, 307, 308)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found = [ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None]
    return [v4 for v4 in found if v4 is not None]


def is_public_address(ip: IPAddress) -> bool:
    """True for a globally routable unicast address (and every IPv4 address embedded in it)."""
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        candidates += _embedded_ipv4(ip)
    return all(
        c.is_global
        and not (c.is_loopback or c.is_private or c.is_link_local or c.is_multicast or c.is_reserved)
        and not c.is_unspecified
        for c in candidates
    )


def _refuse(message: str, *, kind: str = "url_not_allowed") -> InputError:
    return InputError(message, kind=kind)


class UrlFetcher:
    """Fetches http(s) URLs for one process; build once, call :meth:`fetch` concurrently."""

    def __init__(
        self,
        *,
        timeout_s: float = 10.0,
        max_redirects: int = 3,
        address_allowed: AddressPolicy = is_public_address,
    ) -> None:
        # ``address_allowed`` exists so tests can fetch from a local server; the service always uses the default.
        self.timeout_s = timeout_s
        self.max_redirects = max_redirects
        self.address_allowed = address_allowed
        self._client = None

    def _http(self):
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False, timeout=self.timeout_s)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _checked_address(self, host: str, port: int) -> str:
        """Resolve ``host`` and return an address to connect to, if all its addresses are allowed."""
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise _refuse(f"cannot resolve {host!r}: {exc.strerror or exc}", kind="url_fetch_failed") from None
        addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
        if not addresses:
            raise _refuse(f"cannot resolve {host!r}", kind="url_fetch_failed")
        blocked = [str(a) for a in addresses if not self.address_allowed(a)]
        if blocked:
            raise _refuse(
                f"URL host {host!r} resolves to {', '.join(sorted(set(blocked)))}: loopback, private, link-local "
                "and other non-public addresses are never fetched"
            )
        return str(addresses[0])

    async def fetch(self, url: str, *, max_bytes: int) -> bytes:
        """The body at ``url`` (at most ``max_bytes``).

        Raises:
            InputError: ``url_not_allowed`` (scheme, credentials, non-public
                address), ``url_fetch_failed`` (unresolvable, refused, non-2xx,
                too many redirects, timeout) or ``too_large``.
        """
        try:
            return await asyncio.wait_for(self._fetch(url, max_bytes), self.timeout_s)
        except asyncio.TimeoutError:
            raise _refuse(f"fetching {url!r} took longer than {self.timeout_s:g} s", kind="url_fetch_failed") from None

    async def _fetch(self, url: str, max_bytes: int) -> bytes:
        import httpx

        try:
            target = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise _refuse(f"invalid URL {url!r}: {exc}") from None
        for _ in range(self.max_redirects + 1):
            if target.scheme not in ("http", "https") or not target.host:
                raise _refuse(f"only http(s) URLs with a host are fetched, got {str(target)!r}")
            if target.userinfo:
                raise _refuse("URLs with credentials are not fetched")
            port = target.port or (443 if target.scheme == "https" else 80)
            address = await self._checked_address(target.host, port)
            # Connect to the address just checked; keep the name for Host and TLS.
            pinned = target.copy_with(host=address, port=port)
            host_header = target.host if target.port is None else f"{target.host}:{target.port}"
            extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
            request = self._http().build_request(
                "GET", pinned, headers={"Host": host_header, "Accept": "image/*,application/pdf"}, extensions=extensions
            )
            try:
                response = await self._http().send(request, stream=True)
            except httpx.HTTPError as exc:
                raise _refuse(
                    f"fetching {str(target)!r} failed: {type(exc).__name__}", kind="url_fetch_failed"
                ) from None
            try:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    target = target.join(response.headers["location"])
                    continue
                if not 200 <= response.status_code < 300:
                    raise _refuse(
                        f"fetching {str(target)!r} answered HTTP {response.status_code}", kind="url_fetch_failed"
                    )
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise _too_large(str(target), max_bytes)
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise _too_large(str(target), max_bytes)
                return bytes(body)
            finally:
                await response.aclose()
        raise _refuse(f"more than {self.max_redirects} redirects from {url!r}", kind="url_fetch_failed")


def _too_large(url: str, max_bytes: int) -> InputError:
    return InputError(f"{url}: more than the limit of {max_bytes / 1024**2:g} MiB", kind="too_large")
