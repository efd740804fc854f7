"""The playground page (``GET /playground``): served from the package without a key, offline, and off by a setting.

The page itself is driven in a real Chromium against the deployed service in
``tests/test_serve_http.py`` (``TestService.test_playground_in_a_real_browser``).
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from serve.config import load_serve_config
from serve.ingress import Ingress
from serve.protocols.playground import _FILES, PLAYGROUND_ROUTES

KEY = "k-123"


def _client(**limits) -> TestClient:
    from serve.http import create_app

    config = load_serve_config(
        {"models": [{"model": "/nonexistent", "served_model_name": "m"}], "api_key": KEY, "limits": limits}
    )
    return TestClient(create_app(Ingress(config, replicas={})))


@pytest.fixture(scope="module")
def client():
    with _client() as test_client:
        yield test_client


def test_the_page_and_its_files_load_without_a_key_and_the_api_still_needs_it(client):
    page = client.get("/playground")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for src in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        asset = client.get(f"/{src}")
        assert asset.status_code == 200, src
    assert client.get("/playground/playground.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/playground/secrets.txt").status_code in (401, 404)
    assert client.get("/playground/../config.py").status_code in (401, 404)
    assert client.get("/v1/models").status_code == 401
    models = client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    assert [m["id"] for m in models.json()["data"]] == ["m"]


def test_the_page_calls_only_public_routes_of_its_own_service():
    text = "".join((_FILES / name).read_text() for name in ("index.html", "playground.js", "playground.css"))
    # Offline: no other host, no CDN, no protocol-relative URL.
    assert not re.findall(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I)
    assert set(re.findall(r'api\("(/[^"]+)"', text)) == {"/v1/models", "/v1/tasks", "/v1/schema/check", "/v1/extract"}
    assert {f"/playground/{name}" for name in ("playground.js", "playground.css")} <= set(PLAYGROUND_ROUTES)


def test_a_setting_turns_the_page_off():
    with _client(playground=False) as off:
        for route in PLAYGROUND_ROUTES:
            answer = off.get(route)
            assert answer.status_code == 404 and answer.json()["error"]["kind"] == "not_found"
