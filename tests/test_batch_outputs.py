"""Batch outputs and resume, without Ray: atomic part files, each id once, labelr's
config.json, summaries counted from the files, and the command line's usage errors."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.outputs import PartWriter, count_results, generation_window, write_config
from batch.resume import done_ids, list_parts, prepare_output
from batch.rows import result_schema, table
from batch.run import build_parser, main
from docextract.errors import DocExtractError

META = pa.struct([("path", pa.string())])


def _results(ids: list[str], *, errors: frozenset[str] = frozenset()) -> pa.Table:
    rows = []
    for row_id in ids:
        row = {"image_id": row_id, "meta": json.dumps({"path": f"/in/{row_id}"}), "task": "t", "pages": []}
        if row_id in errors:
            row.update(error="broken", error_kind="corrupt_image", valid=False)
        else:
            row.update(output='{"a":1}', valid=True, prompt_tokens=10, completion_tokens=3)
        rows.append(row)
    return table(rows, result_schema(False))


def _writer(out, written=None, **kw) -> PartWriter:
    kw.setdefault("part_rows", 3)
    kw.setdefault("flush_s", 3600)
    return PartWriter(out, "run1", meta_type=META, written=set(written or ()), **kw)


def test_part_writer_writes_whole_parts_and_each_id_once(tmp_path):
    writer = _writer(tmp_path, written={"old"})
    writer.add(_results(["a", "b"]))
    assert list_parts(tmp_path) == []  # below part_rows: still buffered
    writer.add(_results(["c", "d", "old", "a"]))  # "old" from an earlier run, "a" from this one: dropped
    assert [p.name for p in list_parts(tmp_path)] == ["part-run1-00000.parquet"]
    writer.close()
    parts = list_parts(tmp_path)
    assert len(parts) == 2 and writer.duplicates_dropped == 2
    t = pq.read_table(parts)
    assert sorted(t.column("image_id").to_pylist()) == ["a", "b", "c", "d"]
    assert t.schema.field("meta").type == META  # JSON in flight, the job's meta type on disk
    assert t.column("meta").to_pylist()[0] == {"path": "/in/a"}
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_part_writer_flushes_on_time(tmp_path):
    # flush_s=0: every add is "due", so the time path is taken without depending on the clock.
    writer = _writer(tmp_path, part_rows=1000, flush_s=0.0)
    writer.add(_results(["a"]))
    writer.add(_results(["b"]))
    assert [pq.read_metadata(p).num_rows for p in list_parts(tmp_path)] == [1, 1]


def test_resume_done_ids_retry_errors_and_leftovers(tmp_path):
    writer = _writer(tmp_path)
    writer.add(_results(["a", "b", "c", "d"], errors=frozenset({"b", "d"})))
    writer.close()
    (tmp_path / ".part-run0-00000.parquet.tmp").write_bytes(b"half a file")
    prepare_output(tmp_path)
    assert not (tmp_path / ".part-run0-00000.parquet.tmp").exists()
    assert done_ids(tmp_path) == {"a", "b", "c", "d"}
    counts = count_results(list_parts(tmp_path))
    assert (counts["rows"], counts["valid"], counts["invalid"], counts["errors"]) == (4, 2, 0, 2)
    assert counts["error_kinds"] == {"corrupt_image": 2} and counts["duplicate_ids"] == 0
    # --retry-errors: error rows leave the output first, so a retried id is never there twice.
    assert done_ids(tmp_path, retry_errors=True) == {"a", "c"}
    assert sorted(pq.read_table(list_parts(tmp_path)).column("image_id").to_pylist()) == ["a", "c"]


def test_config_json_is_labelr_and_guards_the_output(tmp_path):
    config = {"instructions": "Read it.", "json_schema": {"type": "object"}}
    write_config(tmp_path, config)
    assert json.loads((tmp_path / "config.json").read_text()) == config
    write_config(tmp_path, config)  # the same task again: a resume
    with pytest.raises(DocExtractError, match="another task"):
        write_config(tmp_path, {**config, "instructions": "Something else."})


def test_options_come_from_the_models():
    args = build_parser().parse_args(
        ["--input", "a", "--input", "b", "--output", "o", "--task", "invoice", "--pages", "1,3-4",
         "--num-actors", "2", "--max-in-flight", "8", "--flush-seconds", "5", "--max-tokens", "7", "--pdf-dpi", "100"]
    )  # fmt: skip
    assert args.job__inputs == ["a", "b"] and args.job__pages == [1, 3, 4]
    assert args.job__num_actors == 2 and args.job__flush_s == 5.0
    assert args.cfg__sampling__max_tokens == 7 and args.cfg__preprocess__pdf_dpi == 100
    assert not hasattr(args, "job__batch_size")  # not given: BatchOptions' default applies
    assert "--tensor-parallel-size" in build_parser().format_help()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--input", "/nonexistent/dir"], "no such file"),
        (["--input", "{tmp}", "--min-actors", "3", "--max-actors", "2"], "min_actors"),
        (["--input", "{tmp}", "--task", "nope"], "unknown task"),
    ],
)
def test_usage_errors_are_one_line_before_ray_starts(tmp_path, capsys, extra, expected):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    if "--task" not in argv:
        argv += ["--task", "price_tag"]
    assert main([*argv, "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_docextract_batch_subcommand_is_this_command_line(capsys):
    from docextract.cli.main import main as docextract_main

    assert docextract_main(["batch", "--input", "/nonexistent/dir", "--output", "/tmp/x", "--task", "price_tag"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_submitted_jobs_env_vars_are_not_forwarded_twice(monkeypatch):
    """`ray job submit --runtime-env-json '{"env_vars": ...}'` puts the job's variables in the
    driver's environment; Ray refuses a ray.init runtime_env that sets one of them again."""
    from docextract.cluster.runtime import submitted_job_env_vars

    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    assert submitted_job_env_vars() == {}
    job = {"runtime_env": {"working_dir": "gcs://pkg.zip", "env_vars": {"HF_HUB_OFFLINE": "1"}}}
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps(job))
    assert submitted_job_env_vars() == {"HF_HUB_OFFLINE": "1"}


def test_the_drivers_thread_count_is_not_forwarded_to_engines(monkeypatch):
    """A submitted job's driver runs with OMP_NUM_THREADS=1: forwarded, every engine it starts
    (batch actors and Serve replicas) would compute on one thread."""
    from docextract.cluster.runtime import forwarded_env

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("VLLM_LOGGING_LEVEL", "WARNING")
    env = forwarded_env()
    assert "OMP_NUM_THREADS" not in env and env["VLLM_LOGGING_LEVEL"] == "WARNING"


def test_the_summary_counts_rows_and_fields_to_review(tmp_path):
    rows = [
        {"image_id": "a", "valid": True, "confidence": '{"x":0.2,"y":0.3}', "min_confidence": 0.2, "review": ["x", "y"]},
        {"image_id": "b", "valid": True, "confidence": '{"x":0.9}', "min_confidence": 0.9, "review": []},
        {"image_id": "c", "valid": False, "error": "broken", "error_kind": "corrupt_image"},
    ]
    writer = _writer(tmp_path)
    writer.add(table(rows, result_schema(False)))
    writer.close()
    counts = count_results(list_parts(tmp_path))
    assert (counts["review_rows"], counts["review_fields"]) == (1, 2)
    assert pq.read_table(list_parts(tmp_path)).column("min_confidence").to_pylist() == [0.2, 0.9, None]


def test_the_generation_window_sums_the_hosts_cpu_over_parts_with_and_without_it(tmp_path):
    """A resumed folder may hold parts written before a column existed: each sum counts the rows
    that carry it."""
    new = {"generation_s": 2.0, "host_cpu_s": 0.5, "host_ray_loop_cpu_s": 0.1}
    rows = [{"image_id": "a", "finished_at": 100.0, **new}, {"image_id": "b", "finished_at": 103.0, **new}]
    pq.write_table(table(rows, result_schema(False)), tmp_path / "part-new.parquet")
    old = result_schema(False)
    old = old.remove(old.get_field_index("host_ray_loop_cpu_s"))
    pq.write_table(
        table([{"image_id": "c", "finished_at": 99.0, "generation_s": 1.0, "host_cpu_s": 0.25}], old),
        tmp_path / "part-old.parquet",
    )
    window = generation_window(sorted(tmp_path.glob("*.parquet")))
    assert (window.rows, window.first_submitted_at, window.seconds) == (3, 98.0, 5.0)
    assert (window.host_cpu_s, window.host_cpu_rows) == (1.25, 3)
    assert (window.host_ray_loop_cpu_s, window.host_ray_loop_rows) == (0.2, 2)


def test_an_embedded_ray_starts_its_workers_without_a_runtime_env(monkeypatch):
    """Joining a cluster, the engine's settings travel in the job's runtime_env; an embedded Ray's
    workers inherit them, and a job runtime_env would start each worker twice (setup_worker.py)."""
    from docextract.cluster.runtime import init_options

    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    monkeypatch.setenv("VLLM_LOGGING_LEVEL", "WARNING")
    joined = init_options("127.0.0.1:6379")
    assert set(joined["runtime_env"]) == {"env_vars"}
    assert joined["runtime_env"]["env_vars"]["VLLM_LOGGING_LEVEL"] == "WARNING"
    assert "num_cpus" not in joined
    local = init_options(None, num_cpus=3)
    assert local["runtime_env"] is None and local["num_cpus"] == 3 and local["include_dashboard"] is False
    # What a caller passes itself still goes (the serve command's API key variable).
    given = init_options(None, runtime_env={"env_vars": {"KEY_VAR": "x"}})
    assert given["runtime_env"] == {"env_vars": {"KEY_VAR": "x"}}


def test_an_embedded_rays_workers_get_the_drivers_environment(tmp_path):
    """A real embedded Ray (a new instance even beside the test session's `ray start` cluster):
    a worker sees the driver's vLLM settings, and the job has no runtime_env."""
    import subprocess
    import sys

    script = (
        "import json, os, ray\n"
        "from docextract.cluster.runtime import init_ray\n"
        "os.environ['VLLM_DOCEXTRACT_PROBE'] = 'seen'\n"
        "resources = init_ray(None, num_cpus=1)\n"
        "@ray.remote(num_cpus=1)\n"
        "def probe():\n"
        "    return os.environ.get('VLLM_DOCEXTRACT_PROBE'), dict(ray.get_runtime_context().runtime_env)\n"
        "value, env = ray.get(probe.remote(), timeout=60)\n"
        "print(json.dumps({'cpus': resources.get('CPU'), 'value': value, 'runtime_env': env}))\n"
        "ray.shutdown()\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "VLLM_DOCEXTRACT_PROBE")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"cpus": 1.0, "value": "seen", "runtime_env": {}}
