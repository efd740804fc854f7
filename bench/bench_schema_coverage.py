"""Schema coverage on real-world schemas, through the service: how many a user can send, and whether
``valid`` tells the truth.

The corpus is built by ``scripts/fetch_schema_corpus.py`` from the sources listed in
``bench/schema_corpus_manifest.json`` (repository, commit, path); its ``store`` entries are whole
folders (SchemaStore's ``src/schemas/json`` at the same commit) that the service reads as its schema
store (``schema_store``), so a schema's ``$ref`` to another SchemaStore document is resolved offline,
as a production deployment would configure it.

For each backend (xgrammar, guidance) the docextract app runs on Ray Serve on loopback (one model,
one replica, the tiny random-weight model) and every schema is sent once, as a new user would send
it: ``POST /v1/chat/completions`` with ``response_format`` ``json_schema`` and a small image.
Recorded per backend:

* accepted (200) / refused (4xx, by kind: ``invalid_schema`` is the schema compiler's refusal) /
  server errors (5xx, must be 0);
* answers that finished (``finish_reason: stop``) and, for each, whether the ``docextract.valid`` the
  service answered (and its ``x-docextract-valid`` header) equals an independent jsonschema check of
  the answer's content against the user's schema. The checker resolves the same SchemaStore
  documents through its own ``referencing.Registry`` (each file under its ``$id`` and the URL
  SchemaStore publishes it at), built apart from docextract's bundler; it never fetches.
  ``wrongly_valid`` must be 0;
* how many keywords the grammar enforced, how many were validated after, and the fallbacks (from
  the same compiler, in this process, with the same store), and compile time for a schema seen
  first and seen again (the report cache).

Figures are written to ``bench/results/schema_coverage.json``. Run under
``flock /tmp/docextract-heavy.lock`` on a shared machine.

Usage:
    python scripts/fetch_schema_corpus.py --repo SchemaStore/schemastore=GIT_DIR
    python bench/bench_schema_coverage.py [--model DIR] [--max-tokens 256] [--backends xgrammar,guidance]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # free_port
sys.path.insert(0, str(ROOT / "scripts"))  # the corpus layout
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway loopback Ray

#: Where SchemaStore publishes its files; a reference such as ``tsconfig#/...`` names this URL.
PUBLISHED = "https://json.schemastore.org/"


def _corpus() -> tuple[list[tuple[str, object]], list[str]]:
    from fetch_schema_corpus import CORPUS, store_dirs

    manifest = json.loads((ROOT / "bench" / "schema_corpus_manifest.json").read_text())
    out = []
    for entry in manifest["sources"]:
        path = CORPUS / entry["repo"].replace("/", "__") / entry["path"]
        if not path.is_file():
            raise SystemExit(f"{path} missing: run scripts/fetch_schema_corpus.py first")
        out.append((f"{entry['repo']}:{entry['path']}", json.loads(path.read_text(encoding="utf-8-sig"))))
    stores = [str(d) for d in store_dirs(manifest)]
    if not all(Path(d).is_dir() for d in stores):
        raise SystemExit(f"{stores} missing: run scripts/fetch_schema_corpus.py first")
    return out, stores


def _registry(stores: list[str]):
    """jsonschema's own resolver over the store's files; no retrieval of anything else."""
    import referencing
    import referencing.jsonschema

    resources = {}
    for folder in stores:
        for path in sorted(Path(folder).rglob("*.json")):
            try:
                doc = json.loads(path.read_text(encoding="utf-8-sig"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if not isinstance(doc, dict):
                continue
            spec = referencing.jsonschema.specification_with(
                doc.get("$schema", ""), default=referencing.jsonschema.DRAFT202012
            )
            resource = spec.create_resource(doc)
            own = doc.get("$id") if isinstance(doc.get("$id"), str) else doc.get("id")
            for uri in (own, PUBLISHED + path.name, PUBLISHED + path.stem):
                if isinstance(uri, str) and uri.split("#")[0]:
                    resources.setdefault(uri.split("#")[0], resource)
    # Crawled for embedded ids (base-04.json's "id": "path"); a document whose keywords hold
    # values of the wrong shape cannot be crawled and is kept as it is.
    crawlable, kept = [], []
    for uri, resource in resources.items():
        try:
            referencing.Registry().with_resource(uri, resource).crawl()
            crawlable.append((uri, resource))
        except Exception:
            kept.append((uri, resource))
    return referencing.Registry().with_resources(crawlable).crawl().with_resources(kept)


def _independent_valid(schema: object, name: str, data: object, registry) -> bool | None:
    """The user's schema, resolved by jsonschema through ``registry``; None if it cannot decide."""
    import jsonschema

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    # The schema as SchemaStore publishes it, so relative references get the base URI they have there.
    uri = schema.get("$id") if isinstance(schema, dict) and isinstance(schema.get("$id"), str) else None
    uri = (uri or PUBLISHED + name.rsplit("/", 1)[-1]).split("#")[0]
    try:
        import referencing

        own = referencing.Registry().with_contents([(uri, schema)], default_specification=_spec_of(cls))
        try:
            own = own.crawl()
        except Exception:  # keywords of an unexpected shape (tmlanguage.json): no embedded ids then
            pass
        root = registry.combine(own)
        validator = cls({"$ref": uri}, registry=root, format_checker=cls.FORMAT_CHECKER)
        return validator.is_valid(data)
    except Exception:  # an unresolvable reference: no independent verdict
        return None


def _spec_of(cls):
    import referencing.jsonschema

    return referencing.jsonschema.specification_with(cls.META_SCHEMA.get("$schema", ""))


def _image_uri() -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (96, 96), (200, 60, 60)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _compile_figures(corpus, backend: str, stores: list[str]) -> dict:
    """The compiler's side, in this process: keyword statuses, fallbacks, compile times."""
    from docextract.schema.compiler import check_coverage, clear_cache

    clear_cache()
    check_coverage({"type": "object"}, backend, stores)  # reads the store once, outside the timings
    keywords, fallbacks, first_ms, repeat_ms, bundled = collections.Counter(), collections.Counter(), [], [], 0
    for _, schema in corpus:
        started = time.perf_counter()
        report = check_coverage(schema, backend, stores)
        first_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        check_coverage(schema, backend, stores)
        repeat_ms.append((time.perf_counter() - started) * 1000)
        if report.accepted:
            keywords.update(report.counts())
            bundled += bool(report.bundled)
            if report.fallback:
                fallbacks[report.fallback] += 1
    return {
        "keywords": dict(keywords),
        "bundled_from_store": bundled,
        "fallback_relaxed": fallbacks["relaxed"],
        "fallback_unconstrained": fallbacks["unconstrained"],
        "compile_ms_first_median": round(statistics.median(first_ms), 2),
        "compile_ms_repeat_median": round(statistics.median(repeat_ms), 4),
    }


async def _send_all(base_url: str, model: str, corpus, concurrency: int, max_tokens: int) -> list[dict]:
    import httpx

    image = _image_uri()
    gate = asyncio.Semaphore(concurrency)

    async def one(client, name: str, schema: object) -> dict:
        body = {
            "model": model,
            "max_tokens": max_tokens,
            "temperature": 1.0,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Extract the information shown in the image as JSON."},
                        {"type": "image_url", "image_url": {"url": image}},
                    ],
                }
            ],
            "response_format": {"type": "json_schema", "json_schema": {"name": "corpus", "schema": schema}},
        }
        async with gate:
            started = time.perf_counter()
            try:
                response = await client.post("/v1/chat/completions", json=body)
            except httpx.HTTPError as exc:
                return {"schema": name, "status": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
        row: dict = {"schema": name, "status": response.status_code, "seconds": round(time.perf_counter() - started, 2)}
        try:
            answer = response.json()
        except ValueError:
            return {**row, "error": response.text[:300]}
        if response.status_code != 200:
            error = answer.get("error", {}) if isinstance(answer, dict) else {}
            return {**row, "kind": error.get("kind"), "error": str(error.get("message", answer))[:300]}
        choice = answer["choices"][0]
        info = answer.get("docextract") or {}
        row.update(
            finish_reason=choice.get("finish_reason"),
            valid=info.get("valid"),
            header_valid=response.headers.get("x-docextract-valid"),
            content=choice["message"].get("content"),
        )
        return row

    async with httpx.AsyncClient(base_url=base_url, timeout=1800) as client:
        return await asyncio.gather(*(one(client, name, schema) for name, schema in corpus))


def _served_config(model: str, backend: str, stores: list[str], max_tokens: int) -> dict:
    cpus = os.cpu_count() or 1
    return {
        "models": [
            {
                "model": model,
                "served_model_name": f"tiny-{backend}",
                "structured_output_backend": backend,
                "schema_store": stores,
                # The schema is shown in the prompt too: large ones pass 4096 tokens (the tiny
                # model's position embeddings stop at 32768).
                "max_model_len": 32768,
                "enforce_eager": True,
                # No per-request seed: vLLM 0.32 on the CPU kills the engine when a seeded request's
                # prefill is chunked ("CPU Generator does not use offset"); long schemas chunk.
                "sampling": {"max_tokens": max_tokens, "temperature": 1.0},
                "preprocess": {"max_pixels": 224 * 224},
                "placement": {"cpus_per_engine": cpus},
                # Every request is queued, never refused with a 503: this measures schemas, not load.
                "deployment": {"max_ongoing_requests": 32, "max_queued_requests": -1},
            }
        ],
        "limits": {"request_timeout_s": 1800},
    }


def _summarise(backend: str, corpus, rows: list[dict], registry, compiled: dict, deploy_s: float, run_s: float) -> dict:
    schemas = dict(corpus)
    counts = collections.Counter()
    finished, refusals, errors, answers = [], [], [], []
    for row in rows:
        answers.append({k: row.get(k) for k in ("schema", "status", "finish_reason", "valid")})
        status = row["status"]
        if status == 200:
            counts["accepted"] += 1
        elif status is not None and 400 <= status < 500:
            counts["refused_4xx"] += 1
            counts[f"refused_{row.get('kind')}"] += 1
            refusals.append({k: row.get(k) for k in ("schema", "status", "kind", "error")})
            continue
        else:
            counts["server_error_5xx" if status else "no_answer"] += 1
            errors.append(row)
            continue
        if row.get("finish_reason") == "length":
            counts["cut_by_max_tokens"] += 1
        if row.get("finish_reason") != "stop":
            continue
        try:
            data = json.loads(row["content"])
        except (TypeError, ValueError):
            independent = False  # not JSON: invalid under any schema
        else:
            independent = _independent_valid(schemas[row["schema"]], row["schema"], data, registry)
        finished.append({**{k: row[k] for k in ("schema", "valid", "header_valid")}, "independent_valid": independent})
        answers[-1]["independent_valid"] = independent
    decided = [f for f in finished if f["independent_valid"] is not None]
    total = len(rows)
    return {
        "backend": backend,
        "schemas": total,
        "accepted": counts["accepted"],
        "accepted_pct": round(100 * counts["accepted"] / total, 1),
        "refused_4xx": counts["refused_4xx"],
        "refused_by_kind": {
            k.removeprefix("refused_"): v for k, v in counts.items() if k.startswith("refused_") and k != "refused_4xx"
        },
        "server_error_5xx": counts["server_error_5xx"],
        "no_answer": counts["no_answer"],
        "finished": len(finished),
        "cut_by_max_tokens": counts["cut_by_max_tokens"],
        "finished_valid": sum(1 for f in finished if f["valid"]),
        "header_agrees_with_body": sum(1 for f in finished if f["header_valid"] == str(f["valid"]).lower()),
        "independent_undecided": len(finished) - len(decided),
        "valid_agrees_with_jsonschema": sum(1 for f in decided if f["valid"] == f["independent_valid"]),
        "wrongly_valid": sum(1 for f in decided if f["valid"] and not f["independent_valid"]),
        "wrongly_invalid": sum(1 for f in decided if not f["valid"] and f["independent_valid"]),
        **compiled,
        "deploy_s": round(deploy_s, 1),
        "requests_s": round(run_s, 1),
        "refusals": refusals,
        "disagreements": [f for f in decided if f["valid"] != f["independent_valid"]],
        "server_errors": errors,
        "answers": answers,
    }


def run(args, corpus, stores: list[str]) -> list[dict]:
    import ray
    from ray import serve as ray_serve
    from raycluster import free_port

    from docextract.cluster.runtime import init_ray
    from serve.app import build_app

    registry = _registry(stores)
    init_ray(num_cpus=(os.cpu_count() or 1) + 2)  # the replica takes every core; ingress and proxy none
    port = free_port()
    results = []
    try:
        ray_serve.start(http_options={"host": "127.0.0.1", "port": port})
        for backend in args.backends.split(","):
            compiled = _compile_figures(corpus, backend, stores)
            started = time.perf_counter()
            app = build_app(_served_config(args.model, backend, stores, args.max_tokens))
            ray_serve.run(app, name=f"coverage-{backend}", route_prefix="/")
            deploy_s = time.perf_counter() - started
            started = time.perf_counter()
            rows = asyncio.run(
                _send_all(f"http://127.0.0.1:{port}", f"tiny-{backend}", corpus, args.concurrency, args.max_tokens)
            )
            run_s = time.perf_counter() - started
            ray_serve.delete(f"coverage-{backend}")
            figures = _summarise(backend, corpus, rows, registry, compiled, deploy_s, run_s)
            print(
                json.dumps(
                    {
                        k: v
                        for k, v in figures.items()
                        if k not in ("refusals", "disagreements", "server_errors", "keywords", "answers")
                    }
                ),
                flush=True,
            )
            results.append(figures)
    finally:
        ray_serve.shutdown()
        ray.shutdown()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model directory (default: build the tiny test model in .cache/)")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--backends", default="xgrammar,guidance")
    parser.add_argument("--limit", type=int, help="only the first N schemas (a quick check of the script)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "schema_coverage.json"))
    args = parser.parse_args()
    if args.model is None:
        from docextract.testing.tiny_model import build_tiny_model

        target = ROOT / ".cache" / "tiny-qwen2vl"
        args.model = str(target if (target / "config.json").exists() else build_tiny_model(target))
    corpus, stores = _corpus()
    corpus = corpus[: args.limit] if args.limit else corpus
    results = run(args, corpus, stores)
    out = {
        "benchmark": "schema_coverage",
        "path": "HTTP: Ray Serve on loopback, POST /v1/chat/completions with response_format json_schema and a 96x96 image",
        "corpus": "bench/schema_corpus_manifest.json",
        "schema_store": "SchemaStore src/schemas/json at the manifest's commit (the manifest's store entry)",
        "model": "tiny random-weight Qwen2-VL (docextract.testing.tiny_model)",
        "max_tokens": args.max_tokens,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"written {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
