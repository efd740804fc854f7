"""A second model family on the real engine: a tiny random Idefics3 (SmolVLM's architecture).

Same engine code, same tasks: only the model family registry entry (pixel budget
as a longest edge) and the model's own chat template differ.
"""

from __future__ import annotations

import asyncio
import math

import pytest
from conftest import SAMPLES, EngineRunner
from docfactory import make_pdf, vector_page
from PIL import Image

from docextract.config import ExtractionConfig
from docextract.preprocess.documents import load_document
from docextract.tasks import builtin_task_names, get_builtin_task

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def idefics3_runner(tmp_path_factory):
    from docextract.testing.tiny_model import TINY_IDEFICS3, build_tiny_model

    model_dir = build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-idefics3", TINY_IDEFICS3)
    config = ExtractionConfig(
        model=str(model_dir),
        max_model_len=4096,
        enforce_eager=True,
        max_images_per_prompt=4,
        sampling={"max_tokens": 1024},
        preprocess={"max_pixels": 128 * 128},  # the tiny model's own budget: at most 94 tokens per image
    )
    runner = EngineRunner(config)
    yield runner
    runner.close()


def test_family_settings_reach_vllm(idefics3_runner):
    args = idefics3_runner.engine.engine_args()
    assert args["mm_processor_kwargs"] == {"size": {"longest_edge": math.isqrt(128 * 128)}}
    prompt = idefics3_runner.engine.build_prompt(get_builtin_task("image_card"), [Image.new("RGB", (64, 64))])
    assert "User:<image>" in prompt["prompt"] and prompt["prompt"].endswith("Assistant:")


def test_tiny_image_is_scaled_up_to_the_families_tile(idefics3_runner):
    # The family's minimum is one vision tile, read from the model's preprocessor config
    # (the tiny model tiles at 64 px, saved by transformers 5 in processor_config.json), since the config set no min_pixels of its own.
    engine = idefics3_runner.engine
    assert engine.config.preprocess.min_pixels == 64 * 64
    stamp = Image.new("RGB", (16, 16), "white")
    stamp.paste((0, 0, 0), (0, 0, 8, 8))
    document = load_document(stamp, name="stamp.png", options=engine.config.preprocess)
    assert document.pages[0].image.size == (64, 64)
    (result,) = idefics3_runner.run(engine.extract_document(document, get_builtin_task("image_card")))
    assert [w.kind for w in result.warnings] == ["upscaled"]
    assert result.error is None and result.valid, (result.errors, result.raw_text)


def test_every_builtin_task_per_page_and_whole_document(idefics3_runner, tmp_path):
    engine = idefics3_runner.engine
    pdf_path = tmp_path / "two.pdf"
    pdf_path.write_bytes(make_pdf([vector_page(), vector_page(300, 500)]))
    image = load_document(SAMPLES / "invoice.png", name="invoice.png", options=engine.config.preprocess)
    pdf = load_document(pdf_path, name="two.pdf", options=engine.config.preprocess)
    names = builtin_task_names()

    async def run_all():
        jobs = []
        for name in names:
            task = get_builtin_task(name)
            jobs += [
                engine.extract_document(image, task),
                engine.extract_document(pdf, task, mode="per_page"),
                engine.extract_document(pdf, task, mode="document"),
            ]
        return await asyncio.gather(*jobs)

    batches = idefics3_runner.run(run_all())
    for i, name in enumerate(names):
        task = get_builtin_task(name)
        image_results, page_results, document_results = batches[3 * i : 3 * i + 3]
        assert [r.pages for r in image_results + page_results + document_results] == [[], [1], [2], [1, 2]]
        for result in image_results + page_results + document_results:
            assert result.error is None, result.error
            assert result.valid, (name, result.errors, result.raw_text)
            task.pydantic_model.model_validate(result.data)
