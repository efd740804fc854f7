"""The ``docextract`` command: options generated from the config, clear errors, and real
extractions with the tiny model in a subprocess (as a user runs it)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import jsonschema
import pytest
from conftest import SAMPLES
from docfactory import make_pdf, vector_page

from docextract.cli.main import build_parser, main
from docextract.cli.options import config_overrides
from docextract.cli.options import page_selection as parse_page_selection
from docextract.config import load_config
from docextract.tasks import get_builtin_task

CLI = [sys.executable, "-m", "docextract.cli"]


def run_cli(*args, timeout=600):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def test_options_are_generated_from_the_config_and_override_it(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("max_model_len: 2048\nsampling:\n  temperature: 0.5\n")
    args = build_parser().parse_args(
        ["extract", "a.png", "--task", "invoice", "--max-tokens", "7", "--no-disable-any-whitespace",
         "--pdf-dpi", "100", "--structured-output-backend", "guidance", "--engine-kwargs", '{"seed": 3}']
    )  # fmt: skip
    config = load_config(cfg, **config_overrides(args))
    assert config.max_model_len == 2048  # from the file
    assert config.sampling.temperature == 0.5  # from the file, not reset by the flags
    assert config.sampling.max_tokens == 7
    assert config.disable_any_whitespace is False
    assert config.preprocess.pdf_dpi == 100
    assert config.structured_output_backend == "guidance"
    assert config.engine_kwargs == {"seed": 3}


def test_unknown_config_keys_are_refused(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("max_modle_len: 2048\n")
    assert main(["extract", "x.png", "--task", "invoice", "--config", str(cfg)]) == 2
    assert "max_modle_len" in capsys.readouterr().err


def test_bad_flag_values_are_usage_errors():
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["extract", "a.png", "--task", "t", "--structured-output-backend", "outlines"])
    assert exc.value.code == 2


def test_page_selection():
    assert parse_page_selection("1,3-5,3") == [1, 3, 4, 5]
    for bad in ("0", "5-3", "a", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_page_selection(bad)


def test_tasks_listing(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in ("image_card", "invoice", "price_tag", "animals"):
        assert name in out
    assert main(["tasks", "invoice"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["json_schema"] == get_builtin_task("invoice").json_schema


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20)
    (d / "empty.jpg").write_bytes(b"")
    pdf = make_pdf([vector_page(), vector_page()])
    (d / "truncated.pdf").write_bytes(pdf[: len(pdf) // 3])
    (d / "schema.json").write_text(json.dumps({"type": "object", "properties": {"a": {"type": "strng"}}}))
    (d / "unsupported.json").write_text(
        # multipleOf is accepted now (validated after generation, issue 12); a $ref to another
        # document cannot be generated at all without a schema store.
        json.dumps({"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}})
    )
    return d


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["corrupt.png", "--task", "invoice"], "corrupt.png"),
        (["empty.jpg", "--task", "invoice"], "empty"),
        (["truncated.pdf", "--task", "invoice"], "truncated.pdf"),
        (["ok.png", "--schema", "schema.json"], "invalid JSON Schema"),
        (["ok.png", "--schema", "unsupported.json"], "names another document"),
        (["ok.png", "--task", "no_such_task"], "unknown task"),
    ],
)
def test_bad_input_gives_one_clear_error_and_no_traceback(bad_inputs, args, expected):
    args = [str(bad_inputs / a) if not a.startswith("-") and (bad_inputs / a).exists() else a for a in args]
    proc = run_cli("extract", *args, "--model", "/nonexistent-model", timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("docextract: error:")]
    assert len(errors) == 1, proc.stderr
    assert expected in errors[0]
    assert proc.stdout == ""


def test_unavailable_model_names_the_model_flag(tmp_path):
    image = tmp_path / "ok.png"
    image.write_bytes((SAMPLES / "invoice.png").read_bytes())
    proc = run_cli("extract", image, "--task", "invoice", "--model", "Qwen/Qwen2.5-VL-3B-Instruct", timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "--model" in proc.stderr and "Qwen/Qwen2.5-VL-3B-Instruct" in proc.stderr


@pytest.mark.integration
def test_extract_image_and_pdf_prints_one_valid_line_per_page(tiny_model_dir, tmp_path):
    out = tmp_path / "out.jsonl"
    proc = run_cli(
        "extract", SAMPLES / "invoice.png", SAMPLES / "invoice.pdf", "--task", "invoice",
        "--model", tiny_model_dir, "--max-model-len", "4096", "--max-pixels", 224 * 224, "--output", out,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["source"].rsplit("/", 1)[-1], r["pages"]) for r in lines] == [
        ("invoice.png", []), ("invoice.pdf", [1]), ("invoice.pdf", [2])
    ]  # fmt: skip
    schema = get_builtin_task("invoice").json_schema
    for record in lines:
        assert record["valid"] and record["error"] is None
        jsonschema.validate(record["data"], schema)


@pytest.mark.integration
def test_extract_with_guidance_backend_document_mode_and_yaml_config(tiny_model_dir, tmp_path):
    pdf = tmp_path / "three.pdf"
    pdf.write_bytes(make_pdf([vector_page(), vector_page(), vector_page()]))
    cfg = tmp_path / "engine.yaml"
    cfg.write_text(
        f"model: {tiny_model_dir}\nmax_model_len: 4096\nstructured_output_backend: guidance\n"
        "preprocess:\n  max_pixels: 50176\n  pdf_renderer: poppler\n"
    )
    proc = run_cli("extract", pdf, "--task", "image_card", "--config", cfg, "--mode", "document", "--pages", "1,3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (record,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert record["pages"] == [1, 3] and record["id"].endswith("three.pdf#pages=1,3")
    assert record["valid"], record["errors"]
    jsonschema.validate(record["data"], get_builtin_task("image_card").json_schema)
