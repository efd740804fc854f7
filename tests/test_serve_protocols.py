"""The service's protocols without Ray: OpenAI and TGI translation, strict JSON streaming, errors, metrics,
and the HTTP layer answering bad requests in the ingress (they never reach a replica)."""

from __future__ import annotations

import base64
import io
import json

import pytest
from docfactory import forged_png, image_bytes, make_pdf, vector_page
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from docextract.errors import InputError, SchemaError
from docextract.results import Usage
from serve.config import load_serve_config
from serve.errors import error_body, from_docextract
from serve.ingress import Ingress
from serve.metrics import ServiceMetrics
from serve.protocols.openai_models import (
    ChatCompletionRequest,
    ResponseFormat,
    StrictJsonStream,
    answer_content,
    chat_messages,
    response_task,
)
from serve.protocols.tgi_models import TgiRequest, split_markdown_images, tgi_messages

PNG = image_bytes((40, 30))
PNG_URI = "data:image/png;base64," + base64.b64encode(PNG).decode()
SCHEMA = {
    "type": "object",
    "properties": {"color": {"type": "string", "enum": ["red", "blue"]}, "note": {"type": "string", "maxLength": 5}},
    "required": ["color"],
}


# --- OpenAI --------------------------------------------------------------------------------------


def test_chat_messages_keep_images_in_order_as_placeholders():
    request = ChatCompletionRequest.model_validate(
        {
            "messages": [
                {"role": "developer", "content": "Be terse."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Compare"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/b.png", "detail": "low"}},
                    ],
                },
            ],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}},
            "max_completion_tokens": 12,
            "temperature": 0.5,
            "user": "ignored",
        }
    )
    messages, images = chat_messages(request.messages)
    assert messages == [
        {"role": "system", "content": [{"type": "text", "text": "Be terse."}]},
        {"role": "user", "content": [{"type": "text", "text": "Compare"}, {"type": "image"}, {"type": "image"}]},
    ]
    assert images == ["data:image/png;base64,AAA", "https://example.com/b.png"]
    assert request.sampling_overrides() == {"max_tokens": 12, "temperature": 0.5}


def test_translated_messages_render_through_the_models_own_chat_template(tiny_model_dir):
    from transformers import AutoProcessor

    from docextract.prompts import render_prompt

    processor = AutoProcessor.from_pretrained(str(tiny_model_dir))
    request = ChatCompletionRequest.model_validate(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": PNG_URI}},
                        {"type": "text", "text": "What color?"},
                        {"type": "image_url", "image_url": {"url": PNG_URI}},
                    ],
                }
            ]
        }
    )
    messages, images = chat_messages(request.messages)
    prompt = render_prompt(processor, messages)
    assert prompt.count("<|vision_start|>") == len(images) == 2
    assert prompt.index("<|vision_start|>") < prompt.index("What color?") < prompt.rindex("<|vision_start|>")
    assert prompt.rstrip().endswith("<|im_start|>assistant")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "role"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n must be 1"),
        ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}, "tools"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}, "input_audio"),
        ({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema"}}, "schema"),
    ],
)
def test_requests_the_service_cannot_honour_are_refused(body, fragment):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=fragment):
        ChatCompletionRequest.model_validate(body)


def test_response_format_is_checked_and_required_only_when_the_service_says_so():
    # Plain generation by default (issue 13): no response_format, or "text", is free text.
    assert response_task(None, "xgrammar") is None
    assert response_task(ResponseFormat(type="text"), "xgrammar") is None
    with pytest.raises(Exception, match="response_format") as err:
        response_task(None, "xgrammar", require_schema=True)
    assert err.value.status == 400
    assert response_task(ResponseFormat(type="json_object"), "xgrammar").json_schema == {"type": "object"}
    task = response_task(
        ResponseFormat.model_validate({"type": "json_schema", "json_schema": {"name": "my schema!", "schema": SCHEMA}}),
        "xgrammar",
    )
    assert task.name == "my_schema" and task.json_schema == SCHEMA
    with pytest.raises(SchemaError) as bad:
        response_task(
            ResponseFormat.model_validate(
                {
                    "type": "json_schema",
                    "json_schema": {"schema": {"type": "object", "properties": {"a": {"type": "strang"}}}},
                }
            ),
            "xgrammar",
        )
    assert from_docextract(bad.value).status == 422


def test_strict_json_stream_escapes_control_characters_inside_strings_only():
    raw = '{"a":"x\ty\\"\n","b":[1,2]}'
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    # Fed one character at a time, so state crosses chunk boundaries everywhere.
    stream = StrictJsonStream()
    strict = "".join(stream.feed(ch) for ch in raw)
    assert json.loads(strict) == json.loads(raw, strict=False)
    assert answer_content(raw, None, valid=False) == strict
    assert answer_content(raw, {"a": "é"}, valid=True) == '{"a":"é"}'


# --- TGI -----------------------------------------------------------------------------------------


def test_markdown_images_split_into_parts_in_order():
    inputs = f"![]({PNG_URI})What is this? ![page two](https://example.com/p2.png) Answer in JSON."
    assert split_markdown_images(inputs) == [
        ("image", PNG_URI),
        ("text", "What is this? "),
        ("image", "https://example.com/p2.png"),
        ("text", " Answer in JSON."),
    ]
    messages, images = tgi_messages(inputs)
    assert images == [PNG_URI, "https://example.com/p2.png"]
    assert messages[0]["content"] == [
        {"type": "image"},
        {"type": "text", "text": "What is this?"},
        {"type": "image"},
        {"type": "text", "text": "Answer in JSON."},
    ]
    assert tgi_messages("no images here")[1] == []


def test_tgi_grammar_takes_a_schema_object_or_string_and_none_is_free_text():
    as_text = TgiRequest.model_validate(
        {"inputs": "x", "parameters": {"grammar": {"type": "json", "value": json.dumps(SCHEMA)}}}
    )
    assert as_text.grammar_schema() == SCHEMA
    # No grammar: plain generation (issue 13); the service's require_schema refuses it in the route.
    assert TgiRequest.model_validate({"inputs": "x", "parameters": {}}).grammar_schema() is None
    with pytest.raises(Exception, match="grammar") as err:
        TgiRequest.model_validate(
            {"inputs": "x", "parameters": {"grammar": {"type": "regex", "value": "[a-z]+"}}}
        ).grammar_schema()
    assert err.value.status == 400 and err.value.kind == "unsupported_grammar"
    greedy = TgiRequest.model_validate({"inputs": "x", "parameters": {"temperature": 0.7, "max_new_tokens": 9}})
    assert greedy.parameters.sampling_overrides() == {"max_tokens": 9, "temperature": 0.0}  # TGI: no do_sample, greedy


# --- errors and metrics ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("unsupported_type", 415),
        ("too_large", 413),
        ("too_many_pages", 413),
        ("corrupt_image", 422),
        ("corrupt_pdf", 422),
    ],
)
def test_input_kinds_map_to_http_statuses(kind, status):
    error = from_docextract(InputError("bad", kind=kind))
    assert error.status == status
    body = error_body(error.status, error.message, error.kind)["error"]
    assert body["kind"] == body["code"] == kind and body["message"] == "bad"


def test_metrics_render_counts_tokens_and_validity():
    metrics = ServiceMetrics()
    metrics.observe_request("/v1/extract", "m", 200, 0.2)
    metrics.observe_output("m", True, Usage(prompt_tokens=10, completion_tokens=3))
    metrics.observe_output("m", False, Usage(prompt_tokens=10, completion_tokens=5))
    metrics.reject("m", "queue_full")
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert samples[("docextract_tokens_total", (("kind", "completion"), ("model", "m")))] == 8
    assert samples[("docextract_validity_ratio", (("model", "m"),))] == 0.5
    assert samples[("docextract_rejected_total", (("model", "m"), ("reason", "queue_full")))] == 1
    assert samples[("docextract_request_duration_seconds_count", (("model", "m"), ("route", "/v1/extract")))] == 1


# --- the HTTP layer, answering in the ingress --------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    from serve.http import create_app

    config = load_serve_config(
        {
            "models": [{"model": "/nonexistent", "served_model_name": "m", "preprocess": {"max_pixels": 50176}}],
            "api_key": "k3y",
            "limits": {"max_request_bytes": 200_000, "require_schema": True},
        }
    )
    # No replicas: every request below is answered before one would be called.
    with TestClient(create_app(Ingress(config, replicas={}))) as test_client:
        test_client.headers["Authorization"] = "Bearer k3y"
        yield test_client


def _error(response, status: int, kind: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["kind"] == kind and error["message"]
    return error


def test_every_route_but_health_needs_the_key(client):
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic k3y"}):
        response = client.get("/v1/models", headers=headers)
        _error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/v1/models").json()["data"][0]["id"] == "m"


def test_tasks_list_the_builtin_schemas(client):
    tasks = {t["name"]: t for t in client.get("/v1/tasks").json()}
    assert {"invoice", "price_tag"} <= set(tasks)
    assert tasks["price_tag"]["json_schema"]["type"] == "object"


def test_bad_requests_are_answered_by_the_ingress(client):
    corrupt = forged_png(64, 48)  # a valid header over junk pixel data
    truncated_pdf = make_pdf([vector_page(), vector_page()])
    truncated_pdf = truncated_pdf[: len(truncated_pdf) // 2]
    cases = [
        (client.post("/v1/extract", files={"file": ("c.png", corrupt, "image/png")}, data={"task": "price_tag"}), 422, "corrupt_image"),
        (client.post("/v1/extract", files={"file": ("t.pdf", truncated_pdf, "application/pdf")}, data={"task": "price_tag"}), 422, "corrupt_pdf"),
        (client.post("/v1/extract", files={"file": ("a.txt", b"hello world", "text/plain")}, data={"task": "price_tag"}), 415, "unsupported_type"),
        (client.post("/v1/extract", files={"file": ("a.png", PNG, "image/png")}, data={"json_schema": '{"type": "object", "properties": {"a": {"type": "strang"}}}'}), 422, "invalid_schema"),
        (client.post("/v1/extract", files={"file": ("a.png", PNG, "image/png")}, data={"json_schema": "{not json"}), 400, "invalid_request"),
        (client.post("/v1/extract", files={"file": ("a.png", PNG, "image/png")}, data={"task": "nope"}), 400, "invalid_task"),
        (client.post("/v1/extract", files={"file": ("a.png", PNG, "image/png")}, data={"task": "price_tag", "pages": "2"}), 400, "invalid_pages"),
        (client.post("/v1/extract", files={"file": ("a.png", PNG, "image/png")}, data={"task": "price_tag", "include_images": "maybe"}), 400, "invalid_request"),
        (client.post("/v1/extract", json={"document": "/etc/passwd", "task": "price_tag"}), 400, "invalid_data_uri"),
        (client.post("/v1/extract", json={"document": "http://127.0.0.1/a.png", "task": "price_tag"}), 400, "url_fetch_disabled"),
        (client.post("/v1/extract", json={"document": PNG_URI, "task": "price_tag", "model": "other"}), 404, "model_not_found"),
        (client.post("/v1/extract", content=b"x" * 300_000, headers={"Content-Type": "application/json"}), 413, "request_too_large"),
        (client.post("/v1/extract", content=b"x", headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type"),
        (client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}), 400, "response_format_required"),
        (client.post("/v1/chat/completions", content=b"{", headers={"Content-Type": "application/json"}), 400, "invalid_request"),
        (client.post("/generate", json={"inputs": "hi"}), 400, "grammar_required"),
        (client.post("/v1/extract", json={"document": PNG_URI, "task": "price_tag"}, headers={"X-Request-Timeout": "-1"}), 400, "invalid_request"),
        (client.get("/v1/nothing"), 404, "not_found"),
    ]  # fmt: skip
    for response, status, kind in cases:
        _error(response, status, kind)


def test_chunked_bodies_are_cut_at_the_limit(client):
    def chunks():
        for _ in range(30):
            yield b"x" * 10_000

    _error(
        client.post("/v1/extract", content=chunks(), headers={"Content-Type": "application/json"}),
        413,
        "request_too_large",
    )


def test_too_many_images_for_the_model_is_413(client):
    parts = [{"type": "image_url", "image_url": {"url": PNG_URI}}] * 9  # the model allows 8 per prompt
    response = client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": parts}], "response_format": {"type": "json_object"}},
    )
    _error(response, 413, "too_many_images")
    # and these requests were counted
    metrics = client.get("/metrics").text
    assert 'docextract_requests_total{model="m",route="/v1/chat/completions",status="413"}' in metrics


def test_the_served_name_is_never_a_server_path(tmp_path):
    from docextract.config import ExtractionConfig

    local = tmp_path / "my-model"
    local.mkdir()
    assert ExtractionConfig(model=str(local)).model_name == "my-model"
    assert ExtractionConfig(model="Qwen/Qwen2.5-VL-3B-Instruct").model_name == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert ExtractionConfig(model=str(local), served_model_name="m").model_name == "m"


def test_max_tokens_beyond_the_context_is_a_400_naming_the_limit(client):
    response = client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"},
              "max_tokens": 1_000_000_000},
    )  # fmt: skip
    error = _error(response, 400, "invalid_request")
    assert "max_model_len" in error["message"] and "16384" in error["message"]


def test_require_schema_refuses_plain_requests_on_every_protocol(client):
    _error(client.post("/v1/completions", json={"prompt": "hi"}), 400, "schema_required")
    _error(client.post("/generate_stream", json={"inputs": "hi"}), 400, "grammar_required")
    _error(client.post("/", json={"inputs": "hi", "stream": True}), 400, "grammar_required")


def test_include_images_is_opt_in_and_sends_the_pages_as_the_model_saw_them():
    from docextract.preprocess.documents import load_document
    from serve.protocols.native import page_images
    from serve.protocols.native_models import ExtractRequest, ExtractResponse, parse_options

    # Multipart sends text, JSON a boolean; off unless asked.
    assert parse_options({"task": "invoice"}).include_images is False
    assert parse_options({"include_images": "true"}).include_images is True
    assert parse_options({"include_images": "false"}).include_images is False
    assert ExtractRequest.model_validate({"document": PNG_URI, "include_images": True}).include_images is True

    # The loaded pages (rendered, within the pixel budget), not the upload's bytes.
    document = load_document(make_pdf([vector_page(), vector_page(400, 600)]), name="two.pdf", pages=[2])
    (seen,) = page_images(document)
    assert seen.page == 2
    head, _, data = seen.image.partition(";base64,")
    assert head in ("data:image/png", "data:image/jpeg")
    with Image.open(io.BytesIO(base64.b64decode(data))) as image:
        assert image.size == document.pages[0].image.size and image.mode == "RGB"
    # Flat line art stays lossless PNG.
    (flat,) = page_images(load_document(PNG, name="a.png"))
    assert flat.page == 1 and flat.image.startswith("data:image/png;base64,")

    answer = ExtractResponse(model="m", task="t", task_version="1", results=[])
    assert "pages" not in answer.model_dump(mode="json") and "pages" not in json.loads(answer.model_dump_json())
    answer = ExtractResponse(model="m", task="t", task_version="1", results=[], pages=[seen])
    assert answer.model_dump(mode="json")["pages"] == [{"page": 2, "image": seen.image}]
