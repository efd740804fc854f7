"""Batch jobs on a real local Ray cluster (``ray start --head``) with the tiny model.

Three runs, each starting one engine actor: a folder of images, PDFs and broken
files run from this process (checked by several tests); a labelr and a
Hugging Face Parquet dataset and a 300-page PDF through the real ``ray job submit``;
and a job killed part-way with SIGKILL, then resumed.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jsonschema
import pyarrow.parquet as pq
import pytest
from conftest import REPO
from docfactory import blank_page, image_bytes, make_pdf, raster_page, vector_page
from PIL import Image
from test_batch_inputs import write_hf_parquet, write_labelr_parquet

from batch.resume import list_parts
from batch.run import main
from docextract.tasks import get_builtin_task

pytestmark = pytest.mark.integration

TASK = "price_tag"
#: Pages of the long PDF in the resumed job (issue 14: every page a row, whatever the count);
#: tiny pages so it costs seconds. Page BLANK_PAGE is blank: its row carries the warning.
LONG_PAGES = 300
BLANK_PAGE = 7
RAY = str(Path(sys.executable).with_name("ray"))


def engine_flags(model_dir) -> list[str]:
    """The tiny model as ``tiny_config`` runs it."""
    return ["--model", str(model_dir), "--max-model-len", "4096", "--enforce-eager", "--max-pixels", str(224 * 224),
            "--max-tokens", "1024"]  # fmt: skip


def read_output(out: Path):
    parts = list_parts(out)
    assert parts, f"no part files in {out}"
    return pq.read_table(parts)


def assert_outputs_validate(table) -> None:
    schema = get_builtin_task(TASK).json_schema
    for row in table.to_pylist():
        if row["valid"]:
            jsonschema.validate(json.loads(row["output"]), schema)
        else:
            assert row["output"] is None and row["error"], row


# --- a folder of images, PDFs and broken files, run from this process ---------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("batch-in")
    (root / "shelf").mkdir()
    for i in range(20):
        fmt = "JPEG" if i % 2 else "PNG"
        name = f"shelf/tag{i:02d}.{'jpg' if fmt == 'JPEG' else 'png'}" if i < 10 else f"tag{i:02d}.png"
        (root / name).write_bytes(image_bytes((120 + i, 90), color=(i * 12, 200 - i * 5, 60), fmt=fmt))
    (root / "invoice.pdf").write_bytes(make_pdf([vector_page(), vector_page(), vector_page()]))
    (root / "shelf" / "scan.pdf").write_bytes(make_pdf([raster_page(dpi=72, seed=s) for s in range(3)]))
    pdf = make_pdf([vector_page(), vector_page()])
    (root / "truncated.pdf").write_bytes(pdf[: len(pdf) // 3])
    (root / "corrupt.png").write_bytes(image_bytes()[:40] + b"\x00" * 64)
    (root / "notes.jpg").write_text("not an image, only a name that says so")
    (root / "README.txt").write_text("not an input: skipped by extension")
    return root


#: Ground truth for some of the folder's rows: five that get an output, one error row (no output:
#: its truth values are false negatives) and one id the job never sees. The other 23 have none.
FOLDER_TRUTH = {
    "shelf/tag00.png": {"product_name": "Apples", "price": 1.99, "currency": "EUR", "unit_price": 3.98,
                        "unit": "KILOGRAM", "is_discounted": False},
    "shelf/tag01.jpg": {"product_name": "Milk", "price": 0.99, "currency": None, "unit_price": None,
                        "unit": None, "is_discounted": True},
    "shelf/tag02.png": {"product_name": "Bread", "price": 2.5, "currency": "EUR", "unit_price": None,
                        "unit": "UNIT", "is_discounted": False},
    "tag10.png": {"product_name": "Tea", "price": 4, "currency": "GBP", "unit_price": 40, "unit": "KILOGRAM",
                  "is_discounted": False},
    "invoice.pdf#page=1": {"product_name": None, "price": None, "currency": None, "unit_price": None,
                           "unit": None, "is_discounted": False},
    "corrupt.png": {"product_name": "Cheese", "price": 3.2, "currency": "EUR", "unit_price": 16, "unit": "KILOGRAM",
                    "is_discounted": True},
    "never-run.png": {"product_name": "Salt", "price": 0.5, "currency": "EUR", "unit_price": None, "unit": None,
                      "is_discounted": False},
}  # fmt: skip


@pytest.fixture(scope="module")
def folder_truth(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("batch-truth") / "truth.jsonl"
    path.write_text(
        "".join(json.dumps({"image_id": k, "output": json.dumps(v)}) + "\n" for k, v in FOLDER_TRUTH.items())
    )
    return path


@pytest.fixture(scope="module")
def folder_run(folder, folder_truth, ray_driver, tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch-out") / "out"
    argv = ["--input", str(folder), "--output", str(out), "--task", TASK, *engine_flags(tiny_model_dir),
            "--address", ray_driver.address, "--batch-size", "4", "--max-in-flight", "8", "--include-images",
            "--truth", str(folder_truth)]  # fmt: skip
    started = time.monotonic()
    code = main(argv)
    return code, out, time.monotonic() - started


@pytest.mark.timeout(600)
def test_folder_gives_one_row_per_image_and_page_and_one_error_row_per_broken_file(folder_run):
    code, out, _ = folder_run
    assert code == 0
    t = read_output(out)
    ids = t.column("image_id").to_pylist()
    assert len(ids) == len(set(ids)) == 29
    expected = {f"shelf/tag{i:02d}.{'jpg' if i % 2 else 'png'}" for i in range(10)} | {
        f"tag{i:02d}.png" for i in range(10, 20)
    }
    expected |= {f"invoice.pdf#page={n}" for n in (1, 2, 3)} | {f"shelf/scan.pdf#page={n}" for n in (1, 2, 3)}
    expected |= {"truncated.pdf", "corrupt.png", "notes.jpg"}
    assert set(ids) == expected
    rows = {r["image_id"]: r for r in t.to_pylist()}
    errors = {i: r["error_kind"] for i, r in rows.items() if r["error"]}
    assert errors == {"truncated.pdf": "corrupt_pdf", "corrupt.png": "corrupt_image", "notes.jpg": "unsupported_type"}
    assert sum(r["valid"] for r in rows.values()) == 26
    assert_outputs_validate(t)
    page = rows["shelf/scan.pdf#page=2"]
    assert (page["source"], page["pages"], page["task"]) == ("shelf/scan.pdf", [2], TASK)
    assert page["prompt_tokens"] > 0 and page["completion_tokens"] > 0 and page["model"].endswith("tiny-qwen2vl")


@pytest.mark.timeout(60)
def test_folder_output_is_a_labelr_dataset(folder_run, folder):
    _, out, _ = folder_run
    t = read_output(out)
    assert t.schema.names[:4] == ["image_id", "image", "output", "meta"]
    assert json.loads((out / "config.json").read_text()) == get_builtin_task(TASK).labelr_config()
    row = next(r for r in t.to_pylist() if r["image_id"] == "invoice.pdf#page=2")
    image = Image.open(io.BytesIO(row["image"]["bytes"]))  # the page the model saw, as PNG
    assert image.format == "PNG" and image.width * image.height <= 224 * 224
    assert row["meta"] == {"path": str(folder / "invoice.pdf")}


@pytest.mark.timeout(60)
def test_folder_summary_counts_the_output(folder_run):
    _, out, wall = folder_run
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["rows"], summary["valid"], summary["invalid"], summary["errors"]) == (29, 26, 0, 3)
    assert summary["duplicate_ids"] == 0 and summary["run"]["resumed_rows"] == 0
    assert summary["images_per_s"] > 0 and summary["tokens_per_s"] > 0
    assert 0 < summary["wall_s"] <= wall
    # Start-up in order (Ray connected, engine up, first result at the driver), and the engine
    # actor's own CPU per row, summed from the rows' host_cpu_s.
    run = summary["run"]
    assert 0 <= run["ray_ready_s"] < run["first_request_s"] < run["first_result_s"] <= summary["wall_s"]
    host = read_output(out).column("host_cpu_s").to_pylist()
    assert all(v is not None and v >= 0 for v in host) and sum(host) > 0
    assert run["host_cpu_ms_per_row"] == pytest.approx(1000 * sum(host) / len(host))
    # Of it, Ray's task loop on the actor's main thread: some CPU (its 10-ms timer runs all along),
    # never more than the whole process's (a few microseconds apart, the two clocks read in turn).
    loop = read_output(out).column("host_ray_loop_cpu_s").to_pylist()
    assert all(v is not None and 0 <= v <= h + 1e-3 for v, h in zip(loop, host, strict=True)) and sum(loop) > 0
    assert run["host_ray_loop_cpu_ms_per_row"] == pytest.approx(1000 * sum(loop) / len(loop))


@pytest.mark.timeout(120)
def test_folder_run_is_evaluated_against_the_truth(folder_run, folder_truth, tmp_path):
    """The tiny model's values are random, so its scores mean nothing: this checks the mechanics,
    and that the report's figures agree with each other, with the truth and with the output."""
    from docextract.cli.main import main as docextract_main

    code, out, _ = folder_run
    assert code == 0
    report = json.loads((out / "eval.json").read_text())
    assert (out / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(out / "eval.png").format == "PNG"

    rows = report["rows"]  # 29 rows run, 7 with truth, one of which the job never saw
    assert rows["total"] == rows["both"] + rows["only_predictions"] + rows["only_truth"] == 30
    assert (rows["both"], rows["only_predictions"], rows["only_truth"]) == (6, 23, 1)
    t = read_output(out).to_pylist()
    validity = report["validity"]
    assert validity["rows"] == 30 and validity["predictions"] == len(t) == 29
    assert validity["null_outputs"] == sum(r["output"] is None for r in t) == 3
    assert validity["json_valid"] == sum(r["output"] is not None for r in t)
    assert validity["schema_valid"] == sum(r["valid"] for r in t) == 26
    assert validity["schema_valid_rate"] == pytest.approx(26 / 30)
    docs = report["documents"]
    assert docs["evaluated"] == rows["both"] + rows["only_truth"] == 7
    assert 0 <= docs["exact_match"] <= 7 and docs["exact_match_rate"] == pytest.approx(docs["exact_match"] / 7)

    fields = {f["path"]: f for f in report["fields"]}
    assert list(fields) == list(get_builtin_task(TASK).json_schema["properties"])
    for path, f in fields.items():
        truth_values = sum(truth[path] is not None for truth in FOLDER_TRUTH.values())
        assert f["tp"] + f["fn"] == f["expected"] == truth_values, path
        assert f["tp"] + f["fp"] == f["predicted"], path
        assert f["instances"] == f["tp"] + f["fp"] + f["fn"] - f["mismatches"] + f["tn"] == 7, path
        # "corrupt.png" has no output and "never-run.png" no row: each truth value there is an fn.
        assert f["fn"] >= (FOLDER_TRUTH["corrupt.png"][path] is not None) + (
            FOLDER_TRUTH["never-run.png"][path] is not None
        )
        tp, fp, fn = f["tp"], f["fp"], f["fn"]
        assert f["precision"] == (pytest.approx(tp / (tp + fp)) if tp + fp else None), path
        assert f["recall"] == (pytest.approx(tp / (tp + fn)) if tp + fn else None), path
        assert f["f1"] == (pytest.approx(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else None), path
        assert f["accuracy"] == pytest.approx((tp + f["tn"]) / 7), path
    micro = report["micro"]
    for key in ("tp", "fp", "fn", "tn", "mismatches", "expected", "predicted", "instances"):
        assert micro[key] == sum(f[key] for f in fields.values()), key
    assert micro["f1"] == pytest.approx(2 * micro["tp"] / (2 * micro["tp"] + micro["fp"] + micro["fn"]))
    for key in ("precision", "recall", "f1", "accuracy", "mean_score"):
        values = [f[key] for f in fields.values() if f[key] is not None]
        assert report["macro"][key] == (pytest.approx(sum(values) / len(values)) if values else None), key
    for path, examples in report["worst"].items():
        assert 0 < len(examples) <= 5 and all(e["score"] < 1 for e in examples), path

    # The command line, on the same folder and truth, gives the same figures.
    assert docextract_main(["eval", str(out), str(folder_truth), "--task", TASK, "--out", str(tmp_path)]) == 0
    again = json.loads((tmp_path / "eval.json").read_text())
    assert {k: v for k, v in again.items() if k not in ("predictions", "truth")} == {
        k: v for k, v in report.items() if k not in ("predictions", "truth")
    }
    assert (tmp_path / "eval.png").read_bytes()[:4] == b"\x89PNG"


# --- Parquet datasets: a local driver killed part-way, resumed with `ray job submit` -------------


def _submit(cluster, submission_id: str, entrypoint: list[str], timeout: float) -> subprocess.CompletedProcess:
    runtime_env = {
        # .gitignore already keeps .venv, .cache and build outputs out of the upload.
        "excludes": [".git", ".mypy_cache", ".ruff_cache", ".pytest_cache", "*.egg-info"],
        # Also set by the driver's own forwarding: the two must merge (docextract.cluster.runtime).
        "env_vars": {"HF_HUB_OFFLINE": "1"},
    }
    cmd = [RAY, "job", "submit", "--address", cluster.dashboard_url, "--submission-id", submission_id,
           "--working-dir", str(REPO), "--runtime-env-json", json.dumps(runtime_env), "--", *entrypoint]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def resumed_job(ray_cluster, tiny_model_dir, tmp_path_factory):
    """A labelr and an HF dataset: a local driver runs them one request at a time and is
    killed with SIGKILL once a few rows are written (a crash: no flush, no cleanup); the
    same job is then submitted with ``ray job submit`` and runs to the end."""
    from ray.job_submission import JobSubmissionClient

    tmp = tmp_path_factory.mktemp("batch-job")
    labelr_ids = write_labelr_parquet(tmp / "labelr.parquet", 30, broken=1)
    (tmp / "hf").mkdir()
    write_hf_parquet(tmp / "hf" / "train-00000-of-00001.parquet", 3)
    long_pages = [vector_page(72, 72, shapes=1, text=False)] * LONG_PAGES
    long_pages[BLANK_PAGE - 1] = blank_page(72, 72)
    (tmp / "long.pdf").write_bytes(make_pdf(long_pages))
    out = tmp / "out"
    job = ["-m", "batch.run", "--input", str(tmp / "labelr.parquet"), "--input", str(tmp / "hf"),
           "--input", str(tmp / "long.pdf"), "--output", str(out), "--task", TASK, *engine_flags(tiny_model_dir)]  # fmt: skip

    # One request at a time and one row per part, so parts appear one by one.
    slow = ["--batch-size", "1", "--max-in-flight", "1", "--part-rows", "1"]
    log = open(tmp / "killed.log", "wb")  # noqa: SIM115 - closed below
    first = subprocess.Popen(
        [sys.executable, *job, *slow, "--address", ray_cluster.address],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while len(list_parts(out)) < 3 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # polling the output folder, bounded by the deadline
        finished_early = first.poll() is not None
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
        log.close()
    assert not finished_early, (tmp / "killed.log").read_text()[-3000:]
    done_before = pq.read_table(list_parts(out)).num_rows

    submission_id = f"docextract-batch-test-{uuid.uuid4().hex[:8]}"
    proc = _submit(ray_cluster, submission_id, [sys.executable, *job, "--batch-size", "8"], timeout=420)
    client = JobSubmissionClient(ray_cluster.dashboard_url)
    return {
        "out": out,
        "labelr_ids": labelr_ids,
        "hf_ids": [f"train-00000-of-00001.parquet#row={i}" for i in range(3)],
        "long_ids": [f"long.pdf#page={n}" for n in range(1, LONG_PAGES + 1)],
        "done_before": done_before,
        "status": client.get_job_status(submission_id),
        "logs": client.get_job_logs(submission_id),
        "submit": proc,
    }


@pytest.mark.timeout(900)  # the module fixture's two runs count here
def test_job_submitted_with_ray_job_submit_succeeds_and_completes_the_output(resumed_job):
    from ray.job_submission import JobStatus

    proc = resumed_job["submit"]
    assert resumed_job["status"] == JobStatus.SUCCEEDED, f"{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    assert f"{33 + LONG_PAGES} rows ({32 + LONG_PAGES} valid, 0 invalid, 1 errors)" in resumed_job["logs"]
    t = read_output(resumed_job["out"])
    assert sorted(t.column("image_id").to_pylist()) == sorted(
        resumed_job["labelr_ids"] + resumed_job["hf_ids"] + resumed_job["long_ids"]
    )


@pytest.mark.timeout(60)
def test_killed_job_resumes_with_every_row_exactly_once(resumed_job):
    done_before = resumed_job["done_before"]
    total = 33 + LONG_PAGES
    assert 3 <= done_before < total, f"{done_before} rows were done when the job was killed"
    out = resumed_job["out"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["resumed_rows"] == done_before
    assert summary["run"]["rows"] == total - done_before
    assert summary["rows"] == total and summary["duplicate_ids"] == 0
    ids = read_output(out).column("image_id").to_pylist()
    assert len(ids) == len(set(ids)) == total
    assert not list(out.glob(".*.tmp"))


@pytest.mark.timeout(60)
def test_labelr_parquet_round_trips(resumed_job):
    out, labelr_ids = resumed_job["out"], resumed_job["labelr_ids"]
    t = read_output(out)
    rows = {r["image_id"]: r for r in t.to_pylist()}
    assert t.schema.names[:3] == ["image_id", "output", "meta"]
    assert rows[labelr_ids[-1]]["error_kind"] == "unsupported_type"  # the broken row, kept with its error
    assert_outputs_validate(t)
    # labelr's meta comes back as it went in; the HF rows say where they came from.
    assert rows[labelr_ids[0]]["meta"]["barcode"] == "3000000000000"
    assert rows[labelr_ids[0]]["meta"]["image_url"] == "https://images.example/0.jpg"
    hf_row = rows[resumed_job["hf_ids"][2]]["meta"]
    assert hf_row["row"] == 2 and hf_row["label"] == 2
    assert json.loads((out / "config.json").read_text()) == get_builtin_task(TASK).labelr_config()


@pytest.mark.timeout(60)
def test_long_pdf_gives_one_row_per_page_exactly_once_with_warnings(resumed_job):
    rows = {r["image_id"]: r for r in read_output(resumed_job["out"]).to_pylist()}
    long_rows = {i: r for i, r in rows.items() if r["source"] == "long.pdf"}
    assert sorted(long_rows) == sorted(resumed_job["long_ids"])  # 300 rows, each once (ids are unique)
    assert all(r["valid"] and r["pages"] == [int(i.split("=")[1])] for i, r in long_rows.items())
    blank = long_rows[f"long.pdf#page={BLANK_PAGE}"]["warnings"]
    assert [(w["kind"], w["page"]) for w in blank] == [("blank_page", BLANK_PAGE)]
    assert not any(r["warnings"] for i, r in long_rows.items() if i != f"long.pdf#page={BLANK_PAGE}")


@pytest.mark.timeout(600)
def test_document_mode_job_merges_a_long_pdf_into_one_row_with_sources(ray_driver, tiny_model_dir, tmp_path):
    """Issue 17 through a batch job: a 40-page PDF in document mode, longer than one prompt (the
    tiny engine takes 4 images a prompt), becomes one row whose chunks are merged, with sources."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "forty.pdf").write_bytes(make_pdf([vector_page(200, 260)] * 40))
    out = tmp_path / "out"
    argv = ["--input", str(folder), "--output", str(out), "--task", TASK, *engine_flags(tiny_model_dir),
            "--address", ray_driver.address, "--mode", "document", "--max-images-per-prompt", "4",
            "--pdf-dpi", "36"]  # fmt: skip
    assert main(argv) == 0
    (row,) = read_output(out).to_pylist()
    assert row["image_id"] == "forty.pdf#pages=1-40" and row["valid"], row
    assert_outputs_validate(read_output(out))
    sources = json.loads(row["sources"])
    assert sources and all(set(pages) <= set(range(1, 41)) for pages in sources.values())
    assert isinstance(json.loads(row["conflicts"]), list)


def test_pages_are_never_prepared_in_the_engines_process(ray_driver, tiny_config, tmp_path, capsys):
    """Ray Data fuses maps whose remote args are equal, and by default a CPU engine's and a CPU
    task's are (one CPU each): the engine stage must stay an operator of its own, or pages would be
    decoded and rendered in the engine's process. Planned only: nothing runs."""
    from batch.inputs import plan_inputs
    from batch.options import BatchOptions
    from batch.pipeline import build_dataset

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(image_bytes((64, 64)))
    options = BatchOptions(inputs=[str(tmp_path / "in")], output=str(tmp_path / "out"))
    assert options.preprocess_cpus == tiny_config.placement.cpus_per_engine == 1.0
    plan = plan_inputs(options.inputs, options)
    ds = build_dataset(plan, options, tiny_config, get_builtin_task(TASK), frozenset())
    ds.explain()
    physical = capsys.readouterr().out.split("Physical Plan (Optimized)")[1]
    engine = [line for line in physical.splitlines() if "ExtractionActor" in line]
    assert len(engine) == 1 and "ActorPoolMapOperator[MapBatches(ExtractionActor)]" in engine[0], physical
    assert "preprocess_rows" in physical and "preprocess_rows->" not in engine[0]
