"""The coverage report over HTTP (``POST /v1/schema/check``, answered in the ingress) and the
validity a chat answer carries for a keyword the grammar leaves to the check after generation."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from docextract.results import ExtractionResult
from docextract.validate import validate_output
from serve.config import load_serve_config
from serve.ingress import Ingress
from serve.protocols.common import docextract_info
from serve.protocols.openai_models import ResponseFormat, response_task

IF_THEN = {
    "type": "object",
    "properties": {"a": {"enum": [1, 2]}, "b": {"type": "string", "maxLength": 3}},
    "required": ["a"],
    "if": {"properties": {"a": {"const": 1}}},
    "then": {"required": ["b"]},
}
MIN_PROPS = {"type": "object", "properties": {"a": {"enum": [1]}, "b": {"enum": [2]}}, "minProperties": 1}


@pytest.fixture(scope="module")
def client():
    from serve.http import create_app

    config = load_serve_config({"models": [{"model": "/nonexistent", "served_model_name": "m"}]})
    with TestClient(create_app(Ingress(config, replicas={}))) as test_client:
        yield test_client


def test_schema_check_route(client):
    answer = client.post("/v1/schema/check", json={"schema": IF_THEN})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["accepted"] and body["backend"] == "xgrammar"
    assert set(body["validated_after"]) == {"#: if", "#: then"}
    assert body["counts"]["validated"] == 2
    answer = client.post("/v1/schema/check", json={"task": "invoice", "structured_output_backend": "guidance"})
    assert answer.status_code == 200 and answer.json()["backend"] == "guidance"
    refused = client.post("/v1/schema/check", json={"schema": {"$ref": "https://example.com/x.json"}}).json()
    assert not refused["accepted"] and refused["coverage"][0]["status"] == "refused"
    assert client.post("/v1/schema/check", json={}).status_code == 400


@pytest.mark.parametrize(("schema", "text"), [(IF_THEN, '{"a":1,"b":null}'), (MIN_PROPS, '{"a":null,"b":null}')])
def test_chat_answer_flags_a_keyword_validated_after(schema, text):
    # What the chat route attaches (header and body) for an output the grammar allowed.
    fmt = ResponseFormat.model_validate({"type": "json_schema", "json_schema": {"name": "t", "schema": schema}})
    task = response_task(fmt, "xgrammar")
    outcome = validate_output(text, task)
    report = task.report()
    result = ExtractionResult(
        id="r",
        source="s",
        task=task.name,
        task_version=task.version,
        model="m",
        data=outcome.data,
        valid=outcome.valid,
        errors=outcome.errors,
        backend=report.backend,
        validated_after=report.validated_after,
    )
    served = load_serve_config({"models": [{"model": "/nonexistent", "served_model_name": "m"}]}).default_model
    info = docextract_info(result, served, constrained=True)
    assert info.valid is False and info.errors
    assert info.validated_after and info.backend == "xgrammar"


def test_schema_store_resolves_references_on_the_routes(tmp_path_factory):
    # A served model with a schema store: the check route bundles what a reference names; a
    # reference the store lacks is refused on the chat route (422) with how to fix it, before
    # any replica is called (none is deployed here).
    import json

    from serve.http import create_app

    store = tmp_path_factory.mktemp("store")
    base = {"$id": "https://s.example.com/base.json", "definitions": {"code": {"enum": ["A", "B"]}}}
    (store / "base.json").write_text(json.dumps(base))
    config = load_serve_config(
        {"models": [{"model": "/nonexistent", "served_model_name": "m", "schema_store": [str(store)]}]}
    )
    schema = {
        "$id": "https://s.example.com/app.json",
        "type": "object",
        "properties": {"code": {"$ref": "base.json#/definitions/code"}},
    }
    with TestClient(create_app(Ingress(config, replicas={}))) as client:
        body = client.post("/v1/schema/check", json={"schema": schema}).json()
        assert body["accepted"] and body["bundled"] == ["https://s.example.com/base.json"]
        assert body["engine_schema"]["$defs"]["base.code"]["enum"] == ["A", "B"]
        missing = {"type": "object", "properties": {"x": {"$ref": "https://s.example.com/other.json"}}}
        answer = client.post(
            "/v1/chat/completions",
            json={
                "messages": [{"role": "user", "content": "hi"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": missing}},
            },
        )
        assert answer.status_code == 422, answer.text
        message = answer.json()["error"]["message"]
        assert "the schema store has no document for it" in message and "never fetched" in message


def test_schema_check_route_names_the_other_backend_when_the_configured_one_cannot_compile(client):
    # xgrammar (the configured backend) refuses the scoped flag group; guidance compiles it and
    # runs the request on the same engine (docextract/vllm_plugin.py; tests/test_schema_keywords.py).
    schema = {"type": "object", "properties": {"c": {"type": "string", "pattern": "^(?i:ab)$"}}, "required": ["c"]}
    body = client.post("/v1/schema/check", json={"schema": schema}).json()
    assert body["backend"] == "guidance" and body["fallback"] == "other_backend", body
    assert "xgrammar cannot compile this pattern" in body["fallback_reason"] and body["validated_after"] == []
