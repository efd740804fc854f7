"""Batch input discovery and the CPU stages, without Ray: ids, input kinds, PDF page
expansion, Parquet layouts, and preprocessing that never raises for a bad row."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from docfactory import image_bytes, make_pdf, vector_page
from PIL import Image

from batch.inputs import expand_files, merge_meta_types, parquet_layout, plan_inputs, read_parquet_rows
from batch.options import BatchOptions
from batch.preprocess import preprocess_rows
from batch.rows import IMAGE_TYPE, WORK_SCHEMA, table
from docextract.config import PreprocessOptions
from docextract.errors import DocExtractError

LABELR_META = pa.struct([("barcode", pa.string()), ("off_image_id", pa.string()), ("image_url", pa.string())])
LABELR_SCHEMA = pa.schema(
    [("image_id", pa.string()), ("image", IMAGE_TYPE), ("output", pa.string()), ("meta", LABELR_META)]
)


def write_labelr_parquet(path, n: int, *, broken: int = 0, row_group_size: int = 4) -> list[str]:
    """A Parquet file in labelr's LLM image extraction layout (as HF ``datasets`` writes it);
    the last ``broken`` rows hold bytes that are no image. Returns the ids."""
    rows = []
    for i in range(n):
        barcode = f"{3000000000000 + i}"
        data = (
            b"not an image at all"
            if i >= n - broken
            else image_bytes((96, 72), color=(i * 9 % 255, 90, 40), fmt="JPEG")
        )
        rows.append(
            {
                "image_id": f"{barcode}:{i + 1}",
                "image": {"bytes": data, "path": f"{barcode}_{i + 1}.jpg"},
                "output": json.dumps({"previous": i}),
                "meta": {
                    "barcode": barcode,
                    "off_image_id": str(i + 1),
                    "image_url": f"https://images.example/{i}.jpg",
                },
            }
        )
    pq.write_table(pa.Table.from_pylist(rows, schema=LABELR_SCHEMA), path, row_group_size=row_group_size)
    return [r["image_id"] for r in rows]


def write_hf_parquet(path, n: int) -> None:
    """A Hugging Face image dataset: an ``img`` {bytes, path} struct, a label, no id column."""
    schema = pa.schema([("img", IMAGE_TYPE), ("label", pa.int64()), ("caption", pa.string())])
    rows = [
        {"img": {"bytes": image_bytes((64, 64), color=(20, i * 30, 90)), "path": None}, "label": i, "caption": f"c{i}"}
        for i in range(n)
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def _options(**kw) -> BatchOptions:
    return BatchOptions(inputs=["x"], output="out", **kw)


def _work(rows: list[dict]) -> pa.Table:
    return table(rows, WORK_SCHEMA)


# --- discovery -------------------------------------------------------------------------------


def test_folder_ids_are_relative_paths_and_other_files_are_skipped(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one.png").write_bytes(image_bytes())
    (tmp_path / "a" / "b" / "two.JPG").write_bytes(image_bytes(fmt="JPEG"))
    (tmp_path / "a" / "doc.pdf").write_bytes(make_pdf([vector_page()]))
    (tmp_path / "a" / "notes.txt").write_text("x")
    (tmp_path / "a" / ".hidden.png").write_bytes(image_bytes())
    plan = plan_inputs([str(tmp_path / "a")], _options())
    [source] = plan.sources
    assert source.kind == "files"
    assert sorted(source.ids) == ["b/two.JPG", "doc.pdf", "one.png"]
    assert source.skipped == ["notes.txt"]
    # A glob: ids relative to the part before the first wildcard.
    plan = plan_inputs([str(tmp_path / "a" / "**" / "*.JPG")], _options())
    assert plan.sources[0].ids == ["b/two.JPG"]
    # A file named explicitly is used whatever its extension.
    plan = plan_inputs([str(tmp_path / "a" / "notes.txt")], _options())
    assert plan.sources[0].ids == ["notes.txt"]


def test_duplicate_ids_and_missing_inputs_are_refused(tmp_path):
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "same.png").write_bytes(image_bytes())
    with pytest.raises(DocExtractError, match="duplicate input ids.*same.png"):
        plan_inputs([str(tmp_path / "x"), str(tmp_path / "y")], _options())
    with pytest.raises(DocExtractError, match="no such file"):
        plan_inputs([str(tmp_path / "nope")], _options())
    (tmp_path / "empty").mkdir()
    with pytest.raises(DocExtractError, match="no files found"):
        plan_inputs([str(tmp_path / "empty")], _options())


def test_parquet_layouts_labelr_and_hugging_face(tmp_path):
    ids = write_labelr_parquet(tmp_path / "labelr.parquet", 6)
    (tmp_path / "hf").mkdir()
    write_hf_parquet(tmp_path / "hf" / "train-0.parquet", 3)
    (tmp_path / "hf" / "README.md").write_text("# a dataset card")
    plan = plan_inputs([str(tmp_path / "labelr.parquet"), str(tmp_path / "hf")], _options())
    labelr, hf = plan.sources
    assert (labelr.kind, hf.kind) == ("parquet", "parquet")
    assert labelr.ids == ids
    assert [i["row_group"] for i in labelr.items] == [0, 1]  # one item per row group
    assert labelr.meta_type == LABELR_META
    assert hf.ids == ["train-0.parquet#row=0", "train-0.parquet#row=1", "train-0.parquet#row=2"]
    assert hf.meta_type == pa.struct(
        [("file", pa.string()), ("row", pa.int64()), ("label", pa.int64()), ("caption", pa.string())]
    )
    # One meta type for the job: struct fields merged.
    assert set(plan.meta_type.names) == {"barcode", "off_image_id", "image_url", "file", "row", "label", "caption"}


def test_parquet_layout_needs_a_clear_image_column():
    two = pa.schema([("a", IMAGE_TYPE), ("b", pa.binary())])
    with pytest.raises(DocExtractError, match="--image-column"):
        parquet_layout(two, None, None, "x.parquet")
    assert parquet_layout(two, "b", None, "x.parquet").image_column == "b"
    with pytest.raises(DocExtractError, match="no id column"):
        parquet_layout(two, "a", "missing", "x.parquet")


def test_meta_types_merge_or_fall_back_to_json():
    a = pa.struct([("path", pa.string())])
    b = pa.struct([("path", pa.int64())])
    assert merge_meta_types([a, a]) == a
    assert merge_meta_types([a, b]) == pa.string()
    assert merge_meta_types([a, pa.string()]) == pa.string()


# --- the CPU stages, called as Ray calls them -------------------------------------------------


def test_expand_files_pages_errors_modes_and_done(tmp_path):
    (tmp_path / "doc.pdf").write_bytes(make_pdf([vector_page()] * 3))
    pdf = make_pdf([vector_page()] * 2)
    (tmp_path / "cut.pdf").write_bytes(pdf[: len(pdf) // 2])
    (tmp_path / "pic.png").write_bytes(image_bytes())
    items = [
        {"source": name, "path": str(tmp_path / name), "meta": json.dumps({"path": name})}
        for name in ("doc.pdf", "cut.pdf", "pic.png", "gone.png")
    ]
    batch = pa.Table.from_pylist(items)
    opts = PreprocessOptions()
    rows = expand_files(batch, mode="per_page", pages=None, options=opts, done=frozenset()).to_pylist()
    by_id = {r["id"]: r for r in rows}
    assert list(by_id) == ["doc.pdf#page=1", "doc.pdf#page=2", "doc.pdf#page=3", "cut.pdf", "pic.png", "gone.png"]
    assert by_id["doc.pdf#page=2"]["pages"] == [2]
    assert by_id["cut.pdf"]["error_kind"] == "corrupt_pdf"  # one error row under the file's id
    assert by_id["gone.png"]["error_kind"] == "not_found"
    assert by_id["pic.png"]["error"] is None
    # Whole-document mode: one row per PDF, the engine's id for it; done ids are dropped.
    rows = expand_files(batch, mode="document", pages=None, options=opts, done=frozenset({"pic.png"})).to_pylist()
    assert [r["id"] for r in rows] == ["doc.pdf#pages=1-3", "cut.pdf", "gone.png"]
    assert rows[0]["pages"] == [1, 2, 3]
    # A page selection, and the core's page limit.
    rows = expand_files(batch.slice(0, 1), mode="per_page", pages=[2, 5], options=opts, done=frozenset()).to_pylist()
    assert [r["id"] for r in rows] == ["doc.pdf#page=2", "doc.pdf#page=5"]
    # The page limit holds for a whole-document prompt; per page, every page is a row (issue 14).
    limited = PreprocessOptions(pdf_max_pages=2)
    [row] = expand_files(batch.slice(0, 1), mode="document", pages=None, options=limited, done=frozenset()).to_pylist()
    assert (row["id"], row["error_kind"]) == ("doc.pdf", "too_many_pages")
    rows = expand_files(batch.slice(0, 1), mode="per_page", pages=None, options=limited, done=frozenset()).to_pylist()
    assert [r["id"] for r in rows] == ["doc.pdf#page=1", "doc.pdf#page=2", "doc.pdf#page=3"]


def test_read_parquet_rows_ids_meta_and_missing_bytes(tmp_path):
    write_labelr_parquet(tmp_path / "l.parquet", 5, broken=1, row_group_size=2)
    write_hf_parquet(tmp_path / "h.parquet", 2)
    plan = plan_inputs([str(tmp_path / "l.parquet"), str(tmp_path / "h.parquet")], _options())
    items = pa.Table.from_pylist(plan.by_kind("parquet"))
    rows = read_parquet_rows(items, done=frozenset({"3000000000001:2"})).to_pylist()
    assert [r["id"] for r in rows] == [
        "3000000000000:1",
        "3000000000002:3",
        "3000000000003:4",
        "3000000000004:5",
        "h.parquet#row=0",
        "h.parquet#row=1",
    ]
    assert json.loads(rows[0]["meta"])["barcode"] == "3000000000000"
    assert json.loads(rows[-1]["meta"]) == {"file": "h.parquet", "row": 1, "label": 1, "caption": "c1"}
    assert all(r["data"] for r in rows)
    # A row whose image has no bytes becomes an error row, not a crash.
    schema = pa.schema([("image_id", pa.string()), ("image", IMAGE_TYPE)])
    pq.write_table(
        pa.Table.from_pylist([{"image_id": "x", "image": {"bytes": None, "path": "x.jpg"}}], schema=schema),
        tmp_path / "e.parquet",
    )
    plan = plan_inputs([str(tmp_path / "e.parquet")], _options())
    [row] = read_parquet_rows(pa.Table.from_pylist(plan.by_kind("parquet")), done=frozenset()).to_pylist()
    assert (row["id"], row["error_kind"]) == ("x", "empty_file")


def test_preprocess_rows_never_raises_and_keeps_errors(tmp_path):
    (tmp_path / "doc.pdf").write_bytes(make_pdf([vector_page()] * 2))
    rows = [
        {"id": "p.png", "source": "p.png", "pages": [], "meta": "{}", "data": image_bytes((640, 480))},
        {"id": "doc.pdf#page=2", "source": "doc.pdf", "pages": [2], "meta": "{}", "path": str(tmp_path / "doc.pdf")},
        {"id": "doc.pdf#page=9", "source": "doc.pdf", "pages": [9], "meta": "{}", "path": str(tmp_path / "doc.pdf")},
        {"id": "junk", "source": "junk", "pages": [], "meta": "{}", "data": b"\x89PNG\r\n\x1a\nbroken"},
        {"id": "early", "source": "early", "pages": [], "meta": "{}", "error": "x", "error_kind": "corrupt_pdf"},
    ]
    out = preprocess_rows(_work(rows), options=PreprocessOptions(max_pixels=224 * 224)).to_pylist()
    assert [r["error_kind"] for r in out] == [None, None, "invalid_pages", "corrupt_image", "corrupt_pdf"]
    page = out[0]["images"][0]  # raw RGB: what the engine's host process wraps without decoding
    assert len(page["rgb"]) == page["width"] * page["height"] * 3 and page["width"] * page["height"] <= 224 * 224
    assert page["width"] / page["height"] == pytest.approx(640 / 480, rel=0.05)
    assert out[0]["preview"] is None  # a PNG only when the job stores images
    assert len(out[1]["images"]) == 1
    assert out[4]["images"] is None  # passed through untouched


def test_batch_options_pool_and_concurrency():
    opts = _options(batch_size=8, max_in_flight=20)
    assert opts.pool_size == (1, 1)
    assert opts.concurrent_batches == 4  # ceil(20 / 8) + 1
    assert _options(num_actors=3).pool_size == (3, 3)
    assert _options(min_actors=1, max_actors=4).pool_size == (1, 4)
    with pytest.raises(ValueError, match="min_actors"):
        _options(min_actors=3, max_actors=2)


def test_pages_travel_as_raw_pixels_the_actor_views_without_copying():
    from batch.actor import _image

    source = Image.new("RGB", (96, 72))
    source.putdata([(x * 2, y * 3, (x + y) % 256) for y in range(72) for x in range(96)])
    buf = io.BytesIO()
    source.save(buf, format="PNG")
    row = {"id": "g.png", "source": "g.png", "pages": [], "meta": "{}", "data": buf.getvalue()}
    [ready] = preprocess_rows(_work([row]), options=PreprocessOptions(), preview=True).to_pylist()
    page = _image(ready["images"][0])
    assert page.shape == (72, 96, 3) and page.dtype.name == "uint8"
    assert not page.flags.owndata  # a view over the row's buffer, not a copy
    # Exactly the pixels, no re-encoding loss.
    assert page.reshape(-1, 3).tolist() == [list(p) for p in source.getdata()]
    preview = Image.open(io.BytesIO(ready["preview"]))
    assert preview.format == "PNG" and list(preview.convert("RGB").getdata()) == list(source.getdata())


def test_cpu_stage_work_runs_niced_on_its_own_thread_and_raises_there():
    import os
    import threading

    from batch.preprocess import at_low_priority

    caller = threading.get_native_id()
    before = os.getpriority(os.PRIO_PROCESS, caller)
    worker, nice = at_low_priority(lambda: (threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0)))
    assert worker != caller and nice == 19
    assert os.getpriority(os.PRIO_PROCESS, caller) == before  # the worker process keeps its own priority
    with pytest.raises(ValueError, match="boom"):
        at_low_priority(lambda: (_ for _ in ()).throw(ValueError("boom")))


def test_the_engine_host_process_asks_for_normal_priority_on_every_thread():
    import os
    import threading

    from docextract.host_threads import NORMAL_NICE, normal_priority

    ready, release, tid = threading.Event(), threading.Event(), []

    def niced() -> None:  # a thread at the niceness Ray starts its workers with
        tid.append(threading.get_native_id())
        os.setpriority(os.PRIO_PROCESS, tid[0], 15)
        ready.set()
        release.wait(10)

    thread = threading.Thread(target=niced)
    thread.start()
    assert ready.wait(10)
    try:
        permitted = os.geteuid() == 0  # CAP_SYS_NICE: raising a priority needs it
        assert normal_priority() is permitted
        assert os.getpriority(os.PRIO_PROCESS, tid[0]) == (NORMAL_NICE if permitted else 15)
    finally:
        release.set()
        thread.join()


def test_an_actors_first_call_runs_alone_then_the_others_together():
    import asyncio

    from batch.actor import FirstAlone

    async def scenario():
        gate = FirstAlone()
        running, started, peak = 0, [], []
        release_first, release_rest = asyncio.Event(), asyncio.Event()

        async def call(i):
            nonlocal running
            running += 1
            started.append(i)
            peak.append(running)
            await (release_first if i == 0 else release_rest).wait()
            running -= 1
            return i

        tasks = [asyncio.create_task(gate.run(lambda i=i: call(i))) for i in range(4)]
        for _ in range(5):
            await asyncio.sleep(0)
        alone = list(started)
        release_first.set()
        for _ in range(5):
            await asyncio.sleep(0)
        release_rest.set()
        return alone, max(peak), await asyncio.gather(*tasks)

    alone, peak, results = asyncio.run(scenario())
    assert alone == [0]  # only the first call while nothing has finished
    assert peak == 3 and results == [0, 1, 2, 3]  # then all the others at once


def test_cpu_stage_brings_pages_to_the_model_processors_own_size():
    """Qwen-VL's processor resizes every image to sides that are multiples of 28 within the pixel
    budget; the CPU stage does it instead, so the processor in the engine's host process finds the
    size met, and resizes nothing."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

    from batch.actor import _image
    from docextract.models.families import family_for

    family = family_for(["Qwen2VLForConditionalGeneration"])
    options = PreprocessOptions(max_pixels=200 * 200)
    rows = []
    for i, size in enumerate([(300, 200), (97, 61), (640, 90)]):
        buf = io.BytesIO()
        Image.new("RGB", size, (40 * i, 90, 200)).save(buf, format="PNG")
        rows.append({"id": f"s{i}.png", "source": f"s{i}.png", "pages": [], "meta": "{}", "data": buf.getvalue()})
    ready = preprocess_rows(_work(rows), options=options, family=family).to_pylist()
    processor = Qwen2VLImageProcessor(size={"shortest_edge": options.min_pixels, "longest_edge": options.max_pixels})
    for row in ready:
        assert row["error"] is None, row
        page = row["images"][0]
        assert page["width"] % 28 == 0 and page["height"] % 28 == 0
        assert page["width"] * page["height"] <= options.max_pixels
        grid = processor(images=[_image(page)], return_tensors="pt")["image_grid_thw"].tolist()
        # The processor's grid is the page's own size in 14-px patches: it did not resize.
        assert grid == [[1, page["height"] // 14, page["width"] // 14]]
    # Without a known family the pages stay at the budget's size.
    plain = preprocess_rows(_work(rows[:1]), options=options).to_pylist()[0]["images"][0]
    assert (plain["width"], plain["height"]) != (ready[0]["images"][0]["width"], ready[0]["images"][0]["height"])
