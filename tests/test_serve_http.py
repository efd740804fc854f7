"""The online service on a real local Ray cluster: Ray Serve, the tiny model's real engines, real HTTP.

One application is deployed once, the way the README says to deploy on a
cluster (``serve deploy`` of a Serve config file naming ``serve.app:build_app``,
through the cluster's dashboard), and deleted after the tests. It serves two
models side by side: ``tiny`` (autoscaling between one and two replicas) and
``tiny-tight`` (guidance backend, a queue of one). At most three engines run
at a time, and only during the autoscaling test, which comes last. The model's weights are random: the tests check mechanics
(schema-valid JSON, statuses, scaling), not accuracy.
"""

from __future__ import annotations

import base64
import concurrent.futures
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import threading

import httpx
import jsonschema
import openai
import pypdfium2
import pytest
import yaml
from conftest import REPO, SAMPLES
from docfactory import forged_png, image_bytes, make_pdf, vector_page
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from raycluster import free_port, wait_for

from docextract.chunking import chunk_count
from docextract.tasks import get_builtin_task

pytestmark = pytest.mark.integration

API_KEY = "test-key-7f3a"
APP = "docextract-test"
#: Autoscaling target of the "tiny" model: the API tests stay below it, the load test above it.
TARGET_ONGOING = 8
COLOR_SCHEMA = {
    "type": "object",
    "properties": {
        "color": {"type": "string", "enum": ["red", "green", "blue"]},
        "count": {"type": "integer", "minimum": 0, "maximum": 9},
        "label": {"type": "string", "maxLength": 8},
    },
    "required": ["color", "count", "label"],
    "additionalProperties": False,
}

LONG_SCHEMA = {
    "type": "object",
    "properties": {"note": {"type": "string", "minLength": 150, "maxLength": 160}},
    "required": ["note"],
}


def _png(color=(200, 30, 30), size=(96, 64)) -> bytes:
    return image_bytes(size, color=color)


def _data_uri(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def _valid(data, schema) -> None:
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(data)


def _assert_results_valid(body: dict, task_name: str, pages: list[list[int]]) -> None:
    schema = get_builtin_task(task_name).json_schema
    assert body["task"] == task_name
    assert [r["pages"] for r in body["results"]] == pages
    for result in body["results"]:
        assert result["error"] is None and result["valid"], result
        assert result["finish_reason"] == "stop"
        _valid(result["data"], schema)


def _model(tiny_config, **fields) -> dict:
    return {**tiny_config.model_dump(mode="json"), **fields}


def _replica_states(app: str, deployment: str) -> dict[str, int]:
    from ray import serve as ray_serve

    application = ray_serve.status().applications.get(app)
    if application is None or deployment not in application.deployments:
        return {}
    states = application.deployments[deployment].replica_states
    return {str(getattr(state, "value", state)): n for state, n in states.items()}


def _metric(http: httpx.Client, series: str) -> float:
    """One series' value from /metrics (0 before it first appears)."""
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture(scope="module")
def serve_port(ray_driver):
    """A free port for Serve's HTTP proxy; Serve is shut down after the module."""
    from ray import serve as ray_serve

    yield free_port()
    ray_serve.shutdown()


@pytest.mark.timeout(600)  # the first test includes the deploy (two engines), slow on a busy 2-core machine
class TestService:
    @pytest.fixture(scope="class")
    def base_url(self, ray_cluster, serve_port, tiny_config, tmp_path_factory):
        from ray import serve as ray_serve

        args = {
            "models": [
                _model(
                    tiny_config,
                    served_model_name="tiny",
                    deployment={
                        "max_ongoing_requests": 16,
                        "max_queued_requests": 64,
                        "autoscaling": {
                            "min_replicas": 1,
                            "max_replicas": 2,
                            "target_ongoing_requests": TARGET_ONGOING,
                            "upscale_delay_s": 2,
                            # Longer than a dip in the load while the second replica starts.
                            "downscale_delay_s": 10,
                            "look_back_period_s": 12,
                        },
                    },
                ),
                _model(
                    tiny_config,
                    served_model_name="tiny-tight",
                    structured_output_backend="guidance",
                    deployment={"max_ongoing_requests": 1, "max_queued_requests": 1, "retry_after_s": 3},
                ),
            ],
            "api_key_env": "DOCEXTRACT_TEST_API_KEY",
            "limits": {"max_request_bytes": 2 * 1024**2, "allow_url_fetch": True, "request_timeout_s": 120},
        }
        config = tmp_path_factory.mktemp("serve") / "serve.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "http_options": {"host": "127.0.0.1", "port": serve_port},
                    "applications": [
                        {
                            "name": APP,
                            "route_prefix": "/",
                            "import_path": "serve.app:build_app",
                            "runtime_env": {
                                "env_vars": {
                                    # The ingress reads the key from its environment (api_key_env).
                                    "DOCEXTRACT_TEST_API_KEY": API_KEY,
                                    # Serve's documented knob: load reaches the autoscaler every second,
                                    # not every 10 s, so the scaling test waits less.
                                    "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "1",
                                    "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "1",
                                }
                            },
                            "args": args,
                        }
                    ],
                }
            )
        )
        serve_cli = pathlib.Path(sys.executable).with_name("serve")
        command = [str(serve_cli), "deploy", str(config), "--address", ray_cluster.dashboard_url]
        deployed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert deployed.returncode == 0, deployed.stderr[-3000:]

        def app_status():
            app = ray_serve.status().applications.get(APP)
            status = str(getattr(app.status, "value", app.status)) if app else "NOT_STARTED"
            assert status != "DEPLOY_FAILED", app.message
            return status == "RUNNING"

        wait_for(app_status, 400, f"application {APP} RUNNING", interval=2)
        yield f"http://127.0.0.1:{serve_port}"
        ray_serve.delete(APP)

    @pytest.fixture(scope="class")
    def http(self, base_url):
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120) as client:
            yield client

    @pytest.fixture(scope="class")
    def client(self, base_url):
        return openai.OpenAI(base_url=f"{base_url}/v1", api_key=API_KEY, max_retries=0, timeout=120)

    @staticmethod
    def _color_messages(uri: str) -> list[dict]:
        return [
            {"role": "system", "content": "Answer in JSON."},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": uri}},
                    {"type": "text", "text": "Which color is the image, how many shapes, and a label?"},
                ],
            },
        ]

    def test_health_models_and_tasks(self, base_url, http):
        health = httpx.get(f"{base_url}/healthz", timeout=30)  # no key needed
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "models": {"tiny": "ok", "tiny-tight": "ok"}}
        assert [m["id"] for m in http.get("/v1/models").json()["data"]] == ["tiny", "tiny-tight"]
        tasks = {t["name"]: t for t in http.get("/v1/tasks").json()}
        assert tasks["invoice"]["json_schema"] == get_builtin_task("invoice").json_schema

    def test_openai_client_gets_schema_valid_json(self, client):
        response = client.chat.completions.create(
            model="tiny",
            messages=self._color_messages(_data_uri(_png())),
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "shapes", "schema": COLOR_SCHEMA, "strict": True},
            },
            max_tokens=200,
        )
        choice = response.choices[0]
        assert choice.finish_reason == "stop" and choice.message.role == "assistant"
        _valid(json.loads(choice.message.content), COLOR_SCHEMA)
        assert response.model == "tiny"
        assert response.usage.prompt_tokens > 20  # the image's tokens are in the prompt
        assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens > 0

    def test_openai_client_streams_schema_valid_json(self, client):
        stream = client.chat.completions.create(
            model="tiny",
            messages=self._color_messages(_data_uri(_png((20, 200, 40)))),
            response_format={"type": "json_schema", "json_schema": {"name": "shapes", "schema": COLOR_SCHEMA}},
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        assert chunks[0].choices[0].delta.role == "assistant"
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        _valid(json.loads(text), COLOR_SCHEMA)
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finishes == ["stop"]
        content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
        assert len(content_chunks) > 1  # really streamed, not one final blob
        assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0

    def test_extract_an_image_as_json_and_as_multipart(self, http):
        invoice = (SAMPLES / "invoice.png").read_bytes()
        as_json = http.post(
            "/v1/extract", json={"document": _data_uri(invoice), "task": "invoice", "filename": "in/voice.png"}
        )
        assert as_json.status_code == 200, as_json.text
        _assert_results_valid(as_json.json(), "invoice", [[]])
        assert as_json.json()["results"][0]["id"] == "voice.png"  # directories dropped from client names
        as_form = http.post(
            "/v1/extract",
            files={"file": ("scan.png", invoice, "image/png")},
            data={"task": "price_tag", "max_tokens": "300"},
        )
        assert as_form.status_code == 200, as_form.text
        _assert_results_valid(as_form.json(), "price_tag", [[]])

    def test_extract_each_page_of_a_pdf_and_the_whole_document(self, http):
        pdf = make_pdf([vector_page(), vector_page(400, 600), vector_page()])
        per_page = http.post(
            "/v1/extract", files={"file": ("three.pdf", pdf, "application/pdf")}, data={"task": "image_card"}
        )
        assert per_page.status_code == 200, per_page.text
        _assert_results_valid(per_page.json(), "image_card", [[1], [2], [3]])
        assert [r["id"] for r in per_page.json()["results"]] == [f"three.pdf#page={n}" for n in (1, 2, 3)]
        assert "pages" not in per_page.json()  # page images only when asked
        whole = http.post(
            "/v1/extract",
            json={
                "document": _data_uri(pdf, "application/pdf"),
                "task": "image_card",
                "mode": "document",
                "pages": "1,3",
                "include_images": True,
            },
        )
        assert whole.status_code == 200, whole.text
        _assert_results_valid(whole.json(), "image_card", [[1, 3]])
        # The selected pages as the model saw them: the rendered page within the pixel budget.
        seen = whole.json()["pages"]
        assert [p["page"] for p in seen] == [1, 3]
        for p in seen:
            head, _, data = p["image"].partition(";base64,")
            assert head in ("data:image/png", "data:image/jpeg")
            with Image.open(io.BytesIO(base64.b64decode(data))) as image:
                assert image.mode == "RGB" and image.width * image.height > 0
        # Longer than one prompt (this model takes 4 images a prompt): chunks merged into one result.
        long_pdf = make_pdf([vector_page(200, 260)] * 40)
        merged = http.post(
            "/v1/extract",
            files={"file": ("forty.pdf", long_pdf, "application/pdf")},
            data={"task": "image_card", "mode": "document"},
        )
        assert merged.status_code == 200, merged.text
        _assert_results_valid(merged.json(), "image_card", [list(range(1, 41))])
        (result,) = merged.json()["results"]
        assert len(result["chunks"]) == chunk_count(40, 4, 1) == 13 and result["merge"] == "deterministic"
        assert result["sources"] and all(set(pages) <= set(range(1, 41)) for pages in result["sources"].values())

    def test_an_inline_schema_and_the_model_chosen_by_name(self, http):
        response = http.post(
            "/v1/extract",
            json={
                "document": base64.b64encode(_png((10, 10, 220))).decode(),  # bare base64 is accepted here
                "json_schema": {**COLOR_SCHEMA, "title": "Shapes"},
                "instructions": "Describe the shapes.",
                "model": "tiny-tight",
            },
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == "tiny-tight" and body["task"] == "Shapes"
        (result,) = body["results"]
        assert result["model"] == "tiny-tight" and result["valid"]
        _valid(result["data"], COLOR_SCHEMA)

    def test_tgi_generate_with_a_markdown_image_and_a_json_grammar(self, http):
        response = http.post(
            "/generate",
            json={
                "inputs": f"![]({_data_uri(_png())})What is shown? Answer in JSON.",
                "parameters": {
                    "grammar": {"type": "json", "value": COLOR_SCHEMA},
                    "max_new_tokens": 200,
                    "details": True,
                },
            },
        )
        assert response.status_code == 200, response.text
        body = response.json()
        _valid(json.loads(body["generated_text"]), COLOR_SCHEMA)
        assert body["details"]["finish_reason"] == "eos_token" and body["details"]["generated_tokens"] > 0

    # --- the seeds' clients, unchanged (issue 13) -------------------------------------------------

    def test_huggingface_hub_client_at_the_root_route(self, base_url, monkeypatch):
        from huggingface_hub import InferenceClient, constants

        # The test session runs offline (HF_HUB_OFFLINE=1, so nothing loads from the Hub), which makes
        # huggingface_hub refuse every request; a client machine calling a service is not offline.
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        hf = InferenceClient(base_url, token=API_KEY, timeout=120)
        prompt = f"![]({_data_uri(_png())})What is this a picture of?"
        # Plain generation: free text, as TGI's first examples ask.
        text = hf.text_generation(prompt, max_new_tokens=12)
        assert isinstance(text, str) and text
        # A JSON grammar: the answer validates.
        answer = hf.text_generation(prompt, max_new_tokens=200, grammar={"type": "json", "value": COLOR_SCHEMA})
        _valid(json.loads(answer), COLOR_SCHEMA)
        # details: TGI's details object, each token with its log-probability.
        out = hf.text_generation(prompt, max_new_tokens=12, details=True)
        assert out.details.finish_reason in ("length", "eos_token")
        assert out.details.generated_tokens == len(out.details.tokens) > 0
        assert all(t.logprob <= 0 and isinstance(t.id, int) for t in out.details.tokens)
        # stream=True: one event per token, the last with the whole text and docextract's object.
        events = list(hf.text_generation(prompt, max_new_tokens=200, stream=True, details=True,
                                         grammar={"type": "json", "value": COLOR_SCHEMA}))  # fmt: skip
        assert len(events) > 1 and events[-1].generated_text is not None
        assert [e.generated_text is None for e in events] == [True] * (len(events) - 1) + [False]
        _valid(json.loads(events[-1].generated_text), COLOR_SCHEMA)
        assert events[-1].details.finish_reason == "eos_token" and events[-1].details.generated_tokens > 0
        assert events[-1].docextract["valid"] is True
        plain = list(hf.text_generation(prompt, max_new_tokens=12, stream=True))
        assert len(plain) > 1 and all(isinstance(piece, str) for piece in plain)

    def test_curl_generate_stream_is_server_sent_events(self, base_url):
        body = {
            "inputs": f"![]({_data_uri(_png())})What is shown?",
            "parameters": {"max_new_tokens": 200, "grammar": {"type": "json", "value": COLOR_SCHEMA}},
        }
        done = subprocess.run(
            ["curl", "-sS", "-N", f"{base_url}/generate_stream", "-X", "POST", "-H", "Content-Type: application/json",
             "-H", f"Authorization: Bearer {API_KEY}", "-d", json.dumps(body)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        events = [json.loads(line[len("data:") :]) for line in done.stdout.splitlines() if line.startswith("data:")]
        assert len(events) > 1 and [e["index"] for e in events] == list(range(1, len(events) + 1))
        assert all({"id", "text", "logprob", "special"} <= set(e["token"]) for e in events)
        assert events[-1]["docextract"]["valid"] is True
        # The tokens' texts add up to the raw answer; the last event's text is it, strict and validated.
        _valid(json.loads(events[-1]["generated_text"]), COLOR_SCHEMA)
        assert json.loads("".join(e["token"]["text"] for e in events)) == json.loads(events[-1]["generated_text"])

    def test_huggingface_js_client_text_generation_and_stream(self, base_url):
        done = subprocess.run(
            ["node", str(REPO / "tests" / "js" / "hf_client.mjs"), base_url, API_KEY, _data_uri(_png()),
             json.dumps(COLOR_SCHEMA)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        out = json.loads(done.stdout)
        assert isinstance(out["plain"]["generated_text"], str) and out["plain"]["generated_text"]
        _valid(json.loads(out["constrained"]["generated_text"]), COLOR_SCHEMA)
        chunks = out["chunks"]
        assert len(chunks) > 1 and chunks[-1]["generated_text"] is not None
        assert "".join(c["choices"][0]["text"] for c in chunks) == "".join(c["token"]["text"] for c in chunks[:-1])

    def test_openai_node_client_and_legacy_completions(self, base_url, client):
        done = subprocess.run(
            ["node", str(REPO / "tests" / "js" / "openai_client.mjs"), base_url, API_KEY, _data_uri(_png()),
             json.dumps(COLOR_SCHEMA)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        out = json.loads(done.stdout)
        _valid(json.loads(out["created"]["choices"][0]["message"]["content"]), COLOR_SCHEMA)
        assert out["created"]["docextract"]["valid"] is True
        _valid(json.loads(out["streamed"]), COLOR_SCHEMA)
        assert out["last"]["docextract"]["valid"] is True
        assert out["completion"]["choices"][0]["text"] and out["completion"]["docextract"]["valid"] is None
        # The python client on /v1/completions, with a schema through response_format.
        completion = client.completions.create(
            model="tiny",
            prompt=f"![]({_data_uri(_png())})Answer in JSON.",
            max_tokens=200,
            extra_body={
                "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": COLOR_SCHEMA}}
            },
        )
        _valid(json.loads(completion.choices[0].text), COLOR_SCHEMA)

    @pytest.mark.parametrize(
        "schema",
        [
            # The grammar can only write {"a": 1}; the schema then wants "b" (if/then), or two
            # properties (minProperties): neither is enforced, both are validated after.
            {"properties": {"a": {"const": 1}}, "if": {"properties": {"a": {"const": 1}}}, "then": {"required": ["b"]}},
            {"properties": {"a": {"const": 1}}, "minProperties": 2},
        ],
        ids=["if-then", "minProperties"],
    )
    def test_chat_flags_what_only_validation_catches_in_header_and_body(self, http, schema):
        schema = {"type": "object", "required": ["a"], "additionalProperties": False, **schema}
        fmt = {"type": "json_schema", "json_schema": {"name": "broken", "schema": schema}}
        messages = [{"role": "user", "content": "Answer in JSON."}]
        answer = http.post("/v1/chat/completions", json={"model": "tiny", "messages": messages, "response_format": fmt})
        assert answer.status_code == 200, answer.text
        assert json.loads(answer.json()["choices"][0]["message"]["content"]) == {"a": 1}
        info = answer.json()["docextract"]
        assert answer.headers["x-docextract-valid"] == "false"
        assert info["valid"] is False and info["errors"] and info["validated_after"]

    def test_plain_chat_info_names_and_limits(self, base_url, http, client):
        raw = http.post(
            "/v1/chat/completions",
            json={"model": "tiny", "messages": [{"role": "user", "content": "What is this?"}], "max_tokens": 8},
        )
        assert raw.status_code == 200, raw.text
        assert raw.json()["docextract"]["valid"] is None and "x-docextract-valid" not in raw.headers
        assert raw.json()["choices"][0]["message"]["content"]
        constrained = client.chat.completions.with_raw_response.create(
            model="tiny",
            messages=self._color_messages(_data_uri(_png())),
            response_format={"type": "json_schema", "json_schema": {"name": "shapes", "schema": COLOR_SCHEMA}},
        )
        assert constrained.headers["x-docextract-valid"] == "true"
        # A tiny image is scaled up to the model's minimum, and the answer says so.
        tiny = http.post(
            "/v1/chat/completions",
            json={"model": "tiny", "max_tokens": 8, "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": _data_uri(_png(size=(16, 16)))}},
                {"type": "text", "text": "What is this?"}]}]},
        )  # fmt: skip
        # (one colour, so also blank_page)
        assert {w["kind"] for w in tiny.json()["docextract"]["warnings"]} == {"upscaled", "blank_page"}
        info = http.get("/info").json()
        assert info["model_id"] == "tiny" and info["max_total_tokens"] == 4096
        too_many = http.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1_000_000_000},
        )
        assert too_many.status_code == 400 and "max_model_len" in too_many.json()["error"]["message"]
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], n=2)

    def test_chat_logprobs_in_openais_shape_and_confidence_in_the_docextract_object(self, client):
        response = client.chat.completions.create(
            model="tiny",
            messages=self._color_messages(_data_uri(_png())),
            response_format={"type": "json_schema", "json_schema": {"name": "shapes", "schema": COLOR_SCHEMA}},
            logprobs=True,
            top_logprobs=2,
        )
        content = response.choices[0].logprobs.content
        assert content and all(t.logprob <= 0 and len(t.top_logprobs) == 2 for t in content)
        assert all(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob for t in content)
        extra = response.model_extra["docextract"]
        assert set(extra["confidence"]) == {"color", "count", "label"}
        assert all(0 <= s <= 1 for s in extra["confidence"].values())
        assert extra["min_confidence"] == min(extra["confidence"].values())

    def test_sixteen_concurrent_requests_all_succeed(self, http):
        def one(i: int) -> httpx.Response:
            return http.post(
                "/v1/extract",
                json={
                    "document": _data_uri(_png((i * 15, 255 - i * 15, 90))),
                    "task": "price_tag",
                    "filename": f"{i}.png",
                },
            )

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(one, range(16)))
        assert [r.status_code for r in responses] == [200] * 16, [r.text for r in responses if r.status_code != 200]
        for i, response in enumerate(responses):
            _assert_results_valid(response.json(), "price_tag", [[]])
            assert response.json()["results"][0]["id"] == f"{i}.png"

    def test_bad_inputs_get_4xx_and_the_service_still_answers(self, base_url, http, client):
        truncated_pdf = make_pdf([vector_page(), vector_page()])
        truncated_pdf = truncated_pdf[: len(truncated_pdf) // 2]
        # Not a JSON Schema at all ("required" must be a list): refused whatever the backend.
        bad_schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": "n"}
        cases = [
            ("corrupt image", http.post("/v1/extract", files={"file": ("c.png", forged_png(64, 48), "image/png")}, data={"task": "price_tag"}), 422, "corrupt_image"),
            ("truncated PDF", http.post("/v1/extract", files={"file": ("t.pdf", truncated_pdf, "application/pdf")}, data={"task": "price_tag"}), 422, "corrupt_pdf"),
            ("invalid schema", http.post("/v1/extract", json={"document": _data_uri(_png()), "json_schema": {"type": "object", "properties": {"a": {"type": "strang"}}}}), 422, "invalid_schema"),
            ("unsupported schema", http.post("/v1/extract", json={"document": _data_uri(_png()), "json_schema": bad_schema}), 422, "invalid_schema"),
            ("oversize upload", http.post("/v1/extract", files={"file": ("big.png", b"\x89PNG" + b"0" * (3 * 1024**2), "image/png")}, data={"task": "price_tag"}), 413, "request_too_large"),
            ("missing key", httpx.post(f"{base_url}/v1/extract", json={"document": _data_uri(_png()), "task": "price_tag"}), 401, "unauthorized"),
            ("URL to loopback", http.post("/v1/extract", json={"document": f"{base_url}/healthz", "task": "price_tag"}), 400, "url_not_allowed"),
            ("URL to link-local", http.post("/v1/extract", json={"document": "http://169.254.169.254/latest/meta-data", "task": "price_tag"}), 400, "url_not_allowed"),
            ("not a document", http.post("/v1/extract", files={"file": ("a.txt", b"plain text", "text/plain")}, data={"task": "price_tag"}), 415, "unsupported_type"),
            ("timeout", http.post("/v1/extract", json={"document": _data_uri(_png()), "task": "invoice"}, headers={"X-Request-Timeout": "0.01"}), 504, "timeout"),
        ]  # fmt: skip
        for what, response, status, kind in cases:
            assert response.status_code == status, (what, response.text)
            assert response.json()["error"]["kind"] == kind, what
        # OpenAI's routes answer in OpenAI's error shape, so the client raises its own exceptions.
        messages = self._color_messages(_data_uri(_png()))
        color = {"type": "json_schema", "json_schema": {"name": "c", "schema": COLOR_SCHEMA}}
        # (Without response_format a chat is plain generation now: test_plain_chat_info_names_and_limits.)
        with pytest.raises(openai.BadRequestError, match="top_logprobs"):
            client.chat.completions.create(model="tiny", messages=messages, top_logprobs=2)
        with pytest.raises(openai.UnprocessableEntityError, match="required"):
            client.chat.completions.create(
                model="tiny",
                messages=messages,
                response_format={"type": "json_schema", "json_schema": {"name": "b", "schema": bad_schema}},
            )
        with pytest.raises(openai.NotFoundError, match="unknown model"):
            client.chat.completions.create(model="gpt-4o", messages=messages, response_format=color)
        with pytest.raises(openai.BadRequestError, match="127.0.0.1"):
            client.chat.completions.create(
                model="tiny",
                messages=self._color_messages(f"{base_url}/healthz"),
                response_format=color,
            )
        # Refused by the engine inside the replica: the error crosses the handle with its status.
        with pytest.raises(openai.UnprocessableEntityError, match=r"maximum (model|context) length"):
            client.chat.completions.create(
                model="tiny",
                messages=[{"role": "user", "content": "Look closely. " * 3000}],
                response_format=color,
            )
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{base_url}/v1", api_key="wrong", max_retries=0).models.list()
        # Still healthy, and still extracting.
        assert httpx.get(f"{base_url}/healthz", timeout=30).status_code == 200
        after = http.post("/v1/extract", json={"document": _data_uri(_png()), "task": "price_tag"})
        assert after.status_code == 200
        _assert_results_valid(after.json(), "price_tag", [[]])

    def test_a_full_queue_is_503_with_retry_after(self, http):
        # tiny-tight runs one request and queues one; the rest of a burst is refused at once.
        def one(i: int) -> httpx.Response:
            return http.post(
                "/v1/chat/completions",
                json={
                    "model": "tiny-tight",
                    "messages": self._color_messages(_data_uri(_png((i * 20, 40, 40)))),
                    "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": COLOR_SCHEMA}},
                },
            )

        rejected = 'docextract_rejected_total{model="tiny-tight",reason="queue_full"}'
        before = _metric(http, rejected)
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            responses = list(pool.map(one, range(12)))
        statuses = sorted(r.status_code for r in responses)
        assert set(statuses) == {200, 503}, statuses
        assert _metric(http, rejected) - before == statuses.count(503)
        for response in responses:
            if response.status_code == 503:
                assert response.headers["retry-after"] == "3"
                assert response.json()["error"]["kind"] == "queue_full"
            else:
                _valid(json.loads(response.json()["choices"][0]["message"]["content"]), COLOR_SCHEMA)

    def test_metrics_count_requests_tokens_validity_and_rejections(self, base_url, http):
        def read() -> dict:
            return {
                (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(http.get("/metrics").text)
                for sample in family.samples
            }

        def delta(name: str, **labels) -> float:
            key = (name, tuple(sorted(labels.items())))
            return after.get(key, 0.0) - before.get(key, 0.0)

        before = read()
        ok = http.post("/v1/extract", json={"document": _data_uri(_png()), "task": "price_tag"})
        bad = http.post("/v1/extract", json={"document": _data_uri(_png()), "task": "nope"})
        unauthorized = httpx.get(f"{base_url}/v1/models")
        after = read()
        assert (ok.status_code, bad.status_code, unauthorized.status_code) == (200, 400, 401)
        assert delta("docextract_requests_total", model="tiny", route="/v1/extract", status="200") == 1
        assert delta("docextract_requests_total", model="tiny", route="/v1/extract", status="400") == 1
        assert delta("docextract_request_duration_seconds_count", model="tiny", route="/v1/extract") == 2
        usage = ok.json()["results"][0]["usage"]
        assert delta("docextract_tokens_total", kind="completion", model="tiny") == usage["completion_tokens"]
        assert delta("docextract_tokens_total", kind="prompt", model="tiny") == usage["prompt_tokens"]
        assert delta("docextract_outputs_total", model="tiny", valid="true") == 1
        # Since start, over every output of this session's earlier tests too (some invalid on purpose).
        valid, invalid = (
            after.get(("docextract_outputs_total", (("model", "tiny"), ("valid", v))), 0.0) for v in ("true", "false")
        )
        assert after[("docextract_validity_ratio", (("model", "tiny"),))] == valid / (valid + invalid)
        assert delta("docextract_rejected_total", model="-", reason="unauthorized") == 1

    def test_playground_in_a_real_browser(self, base_url, tmp_path):
        # Debian's Chromium, driven by playwright (both from scripts/setup.sh); as root it needs --no-sandbox.
        sync_api = pytest.importorskip("playwright.sync_api")
        chromium = shutil.which("chromium")
        if chromium is None:
            pytest.skip("no chromium on PATH (scripts/setup.sh installs it)")
        # DOCEXTRACT_PLAYGROUND_SCREENSHOTS=docs refreshes the README's pictures.
        shots = pathlib.Path(os.environ.get("DOCEXTRACT_PLAYGROUND_SCREENSHOTS") or tmp_path)
        pdf = SAMPLES / "invoice.pdf"
        pages = len(pypdfium2.PdfDocument(pdf))
        problems: list[str] = []
        with sync_api.sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.on("pageerror", lambda exc: problems.append(str(exc)))
                # A blocked script, style or request (the page's CSP allows this origin only) is a console error.
                page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
                assert page.goto(f"{base_url}/playground").status == 200  # the page itself needs no key
                page.fill("#api-key", API_KEY)
                page.press("#api-key", "Enter")  # keyboard: Enter connects
                page.locator('#model option[value="tiny-tight"]').wait_for(state="attached")
                page.select_option("#model", "tiny")
                page.select_option("#task", "invoice")
                page.set_input_files("#file", str(pdf))
                page.click("#run")
                cards = page.locator("#results article.result")
                cards.nth(pages - 1).wait_for(timeout=300_000)
                assert cards.count() == pages
                for n in range(pages):
                    card = cards.nth(n)
                    assert f"invoice.pdf#page={n + 1}" in card.locator("h3").inner_text()
                    assert card.get_attribute("data-valid") == "true"
                    assert card.locator(".badge").inner_text() == "valid"
                    assert "tokens" in card.locator(".facts").inner_text()
                assert page.locator("#pages-view .page").count() == pages
                # The pages as the model saw them (include_images), not numbers: decoded, not broken images.
                images = page.locator("#pages-view .page img")
                assert images.count() == pages
                for n in range(pages):
                    image = images.nth(n)
                    assert image.get_attribute("src").startswith(("data:image/png;base64,", "data:image/jpeg;base64,"))
                    assert image.evaluate("i => i.complete && i.naturalWidth > 0")
                    assert page.locator("#pages-view .page").nth(n).get_attribute("data-page") == str(n + 1)
                assert "-F 'task=invoice'" in page.locator("#snippet").inner_text()
                page.screenshot(path=str(shots / "playground-result.png"), full_page=True)

                page.check('input[name="source"][value="schema"]')
                page.fill("#schema", '{"type": "object", "properties": {"total": {"type": "strnig"}}}')
                verdict = page.locator("#coverage-verdict")
                verdict.wait_for(timeout=30_000)
                assert verdict.inner_text().startswith("Refused") and "strnig" in verdict.inner_text()
                page.click("#run")
                error = page.locator("#error")
                error.wait_for(state="visible", timeout=60_000)
                assert error.inner_text().startswith("422") and "strnig" in error.inner_text()
                page.screenshot(path=str(shots / "playground.png"), full_page=True)

                page.set_viewport_size({"width": 390, "height": 844})  # phone width: nothing scrolls sideways
                assert page.evaluate("document.documentElement.scrollWidth") <= 390
            finally:
                browser.close()
        assert not problems, problems

    def test_serve_adds_a_replica_under_load_and_removes_it_after(self, base_url):
        """``tiny`` has min 1 / max 2 replicas; the replica counts are read from Serve's status."""
        deployment = "Extractor_tiny"
        # The bursts of the tests above stay under the target; should a slow machine stretch one
        # past it, start from one replica again.
        wait_for(lambda: _replica_states(APP, deployment) == {"RUNNING": 1}, 180, "one replica before the load")
        stop = threading.Event()
        outcomes: list[int] = []

        def load(i: int) -> None:
            # Long generations (the schema forces a 150-character string) keep each request in the
            # replica, so the load Serve sees stays near the number of clients however busy the machine.
            body = {
                "model": "tiny",
                "messages": [{"role": "user", "content": f"Write a long note, number {i}."}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "note", "schema": LONG_SCHEMA}},
                "max_tokens": 600,
            }
            with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120) as client:
                while not stop.is_set():
                    outcomes.append(client.post("/v1/chat/completions", json=body).status_code)

        # Twice the target, held until Serve has started the second replica.
        workers = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(2 * TARGET_ONGOING)]
        for worker in workers:
            worker.start()
        try:
            wait_for(lambda: _replica_states(APP, deployment).get("RUNNING") == 2, 300, "a second RUNNING replica")
        finally:
            stop.set()
            for worker in workers:
                worker.join(130)
        assert outcomes and set(outcomes) == {200}, sorted(set(outcomes))
        wait_for(lambda: _replica_states(APP, deployment) == {"RUNNING": 1}, 180, "scaling back to one replica")
