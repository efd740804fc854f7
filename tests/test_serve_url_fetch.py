"""The URL fetcher's guard against reaching inside the network, against a real local HTTP server."""

from __future__ import annotations

import asyncio
import http.server
import ipaddress
import threading
import time

import pytest
from docfactory import image_bytes
from raycluster import free_port

from docextract.errors import InputError
from serve.errors import status_for
from serve.inputs import reference_bytes
from serve.url_fetch import UrlFetcher, is_public_address

PNG = image_bytes((32, 24))


class _Handler(http.server.BaseHTTPRequestHandler):
    routes = {
        "/img.png": (200, {"Content-Type": "image/png"}, PNG),
        "/big": (200, {}, b"x" * 5000),
        "/missing": (404, {}, b"no"),
        "/to-private": (302, {"Location": "http://10.1.2.3/img.png"}, b""),
        "/to-img": (302, {"Location": "/img.png"}, b""),
        "/loop": (302, {"Location": "/loop"}, b""),
    }

    def do_GET(self):  # noqa: N802 - the stdlib's name
        if self.path == "/slow":
            time.sleep(2)  # an upstream that is too slow, not a synchronisation
        status, headers, body = self.routes.get(self.path, (200, {}, b"slow"))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    port = free_port()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    httpd.daemon_threads = True  # a handler still sleeping in /slow must not hold the teardown
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    httpd.shutdown()
    httpd.server_close()


def _fetch(url: str, *, max_bytes: int = 10_000, **kwargs) -> bytes:
    async def go():
        fetcher = UrlFetcher(**kwargs)
        try:
            return await fetcher.fetch(url, max_bytes=max_bytes)
        finally:
            await fetcher.aclose()

    return asyncio.run(go())


def _refused(url: str, **kwargs) -> InputError:
    with pytest.raises(InputError) as err:
        _fetch(url, **kwargs)
    return err.value


def _loopback_only(ip) -> bool:
    return ip.is_loopback


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
        "224.0.0.1", "240.0.0.1", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
        "2002:7f00:1::1", "::",
    ],
)  # fmt: skip
def test_non_public_addresses_are_refused(address):
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert is_public_address(ipaddress.ip_address(address))


def test_loopback_is_never_fetched_even_when_it_answers(server):
    error = _refused(f"{server}/img.png")
    assert error.kind == "url_not_allowed" and status_for(error) == 400
    assert "127.0.0.1" in error.message
    port = server.rsplit(":", 1)[1]
    assert _refused(f"http://localhost:{port}/img.png").kind == "url_not_allowed"  # a name resolving to loopback


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.png", "file:///etc/passwd", "http://user:pw@example.com/a.png", "http:///nohost"]
)
def test_other_schemes_and_credentials_are_refused(url):
    assert _refused(url).kind == "url_not_allowed"


def test_fetch_with_a_permissive_policy_returns_the_body(server):
    assert _fetch(f"{server}/img.png", address_allowed=_loopback_only) == PNG


def test_redirects_are_followed_and_each_target_is_checked(server):
    assert _fetch(f"{server}/to-img", address_allowed=_loopback_only) == PNG
    error = _refused(f"{server}/to-private", address_allowed=_loopback_only)
    assert error.kind == "url_not_allowed" and "10.1.2.3" in error.message
    assert "redirects" in _refused(f"{server}/loop", address_allowed=_loopback_only, max_redirects=2).message


def test_size_status_and_time_limits(server):
    big = _refused(f"{server}/big", address_allowed=_loopback_only, max_bytes=1000)
    assert big.kind == "too_large" and status_for(big) == 413
    assert _refused(f"{server}/missing", address_allowed=_loopback_only).kind == "url_fetch_failed"
    started = time.monotonic()
    slow = _refused(f"{server}/slow", address_allowed=_loopback_only, timeout_s=0.3)
    assert slow.kind == "url_fetch_failed" and "longer than" in slow.message
    assert time.monotonic() - started < 1.5


def test_references_are_data_uris_urls_or_base64_never_paths():
    import base64

    async def ref(value, **kwargs):
        return await reference_bytes(value, fetcher=None, max_bytes=10_000, name="doc", **kwargs)

    encoded = base64.b64encode(PNG).decode()
    assert asyncio.run(ref(f"data:image/png;base64,{encoded}")) == PNG
    assert asyncio.run(ref(encoded, allow_bare_base64=True)) == PNG
    for value, kind in [
        ("http://example.com/a.png", "url_fetch_disabled"),
        ("/etc/passwd", "invalid_data_uri"),
        (encoded, "invalid_data_uri"),  # bare base64 only where allowed
    ]:
        with pytest.raises(InputError) as err:
            asyncio.run(ref(value))
        assert err.value.kind == kind, value
    with pytest.raises(InputError) as err:
        asyncio.run(ref("/etc/passwd", allow_bare_base64=True))
    assert err.value.kind == "invalid_data_uri"
    with pytest.raises(InputError) as err:
        asyncio.run(reference_bytes("A" * 40_000, fetcher=None, max_bytes=10_000, name="d", allow_bare_base64=True))
    assert err.value.kind == "too_large"
