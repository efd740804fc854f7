"""One configuration model for every front door.

:class:`ExtractionConfig` is what the CLI, the Serve ``args:`` block and the
batch job all validate against (``extra="forbid"``: a misspelt key is an error,
not a silent default). CLI options are generated from its fields
(:func:`docextract.cli.options.add_config_arguments`), so a default is written
once, here, and flags given on top of a settings file are applied by one rule,
:func:`merge_overrides`, at every door. ``engine_kwargs`` is the one free-form
pass-through, straight to vLLM's ``AsyncEngineArgs``.
"""

from __future__ import annotations

import pathlib
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from docextract.errors import DocExtractError, validation_problems
from docextract.models.families import GENERIC_MIN_PIXELS, model_min_pixels

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_MAX_PAGE_PIXELS",
    "DEFAULT_MIN_PIXELS",
    "MIN_IMAGE_SIDE",
    "BLANK_PAGE_ACTIONS",
    "BlankPageAction",
    "DEFAULT_MODEL",
    "DOCUMENT",
    "DOCUMENT_MODES",
    "PDF_RENDERERS",
    "PER_PAGE",
    "DocumentMode",
    "ExtractionConfig",
    "MERGE_STRATEGIES",
    "MergeStrategy",
    "PdfRenderer",
    "PlacementConfig",
    "PreprocessOptions",
    "SamplingConfig",
    "load_config",
    "merge_overrides",
    "nested_settings",
    "read_config_file",
    "unwrap_optional",
]

#: The production default: small enough for one 24 GB GPU, good at documents.
DEFAULT_MODEL = "Qwen/Qwen2.5-VL-3B-Instruct"

#: Refuse images whose header claims more pixels than this (decompression bombs). An A4 or
#: letter page scanned at 600 dpi (35 MP) fits; decoded as RGB that is at most 150 MB.
#: Pillow's own bomb limit (89 MP warning, 179 MP error) is higher.
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
#: Refuse input files larger than this.
DEFAULT_MAX_BYTES = 50 * 1024**2
#: PDF pages larger than this at the requested dpi are rendered at a lower dpi.
DEFAULT_MAX_PAGE_PIXELS = 50_000_000

#: Smaller images and pages are scaled up to this many pixels when the model is unknown: the
#: Qwen2-VL / Qwen2.5-VL family's minimum (56 x 56, 4 image tokens), the default model's. An
#: :class:`ExtractionConfig` uses its model family's own minimum instead
#: (:func:`docextract.models.families.model_min_pixels`).
DEFAULT_MIN_PIXELS = GENERIC_MIN_PIXELS
#: Refuse (``too_small``) an image or page whose shorter side has fewer pixels than this: below
#: it there is nothing to read, and scaling it up only invents pixels. An 8 x 8 image is kept.
MIN_IMAGE_SIDE = 8

#: What happens to a page of one uniform colour (blank in every renderer tried): sent to the
#: model anyway, or skipped (its result then has no output); either way it carries ``blank_page``.
BlankPageAction = Literal["send", "skip"]
BLANK_PAGE_ACTIONS: tuple[BlankPageAction, ...] = get_args(BlankPageAction)

#: How a multi-page document becomes prompts: one per page, or one for the whole document.
DocumentMode = Literal["per_page", "document"]
PER_PAGE: DocumentMode = "per_page"
DOCUMENT: DocumentMode = "document"
DOCUMENT_MODES: tuple[DocumentMode, ...] = get_args(DocumentMode)

#: How the results of a long document's chunks become one result (see ``merge_strategy``).
MergeStrategy = Literal["deterministic", "model"]
MERGE_STRATEGIES: tuple[MergeStrategy, ...] = get_args(MergeStrategy)

#: PDF renderers: pdfium, poppler, or auto (pdfium, then poppler if pdfium cannot read the file).
PdfRenderer = Literal["auto", "pdfium", "poppler"]
PDF_RENDERERS: tuple[PdfRenderer, ...] = get_args(PdfRenderer)


class PreprocessOptions(BaseModel):
    """How inputs become model-ready page images, and the limits that protect the service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_pixels: int | None = Field(
        default=1280 * 28 * 28,
        gt=0,
        description=(
            "Largest image given to the model, in pixels (width x height); larger images and "
            "pages are scaled down, keeping their aspect ratio. The default, 1280*28*28, is "
            "1280 Qwen2-VL image tokens. None keeps the full size."
        ),
    )
    min_pixels: int | None = Field(
        default=DEFAULT_MIN_PIXELS,
        gt=0,
        description=(
            "Smaller images and pages are scaled up to at least this many pixels (the result then "
            "carries an 'upscaled' warning). Default: the loaded model family's minimum (Qwen2-VL and "
            "Qwen2.5-VL 56*56, Idefics3/SmolVLM one vision tile, e.g. 364*364, Pixtral 16*16; 56*56 "
            "for other models), at most max_pixels. An image whose shorter side is under 8 pixels is "
            "refused (too_small). None never scales up."
        ),
    )
    blank_pages: BlankPageAction = Field(
        default="send",
        description=(
            "A page of one uniform colour (re-rendered with the other renderer under pdf_renderer=auto "
            "first) carries a 'blank_page' warning and is either still sent to the model (send) or "
            "skipped, its result having no output (skip)."
        ),
    )
    max_image_pixels: int = Field(
        default=DEFAULT_MAX_IMAGE_PIXELS,
        gt=0,
        description=(
            "Refuse images whose header claims more pixels than this (decompression bombs), "
            "checked before decoding. PDF pages that would be larger at pdf_dpi are rendered "
            "at a lower dpi instead."
        ),
    )
    max_bytes: int = Field(
        default=DEFAULT_MAX_BYTES,
        gt=0,
        description="Refuse files larger than this many bytes.",
    )
    pdf_dpi: int = Field(
        default=150,
        ge=36,
        le=600,
        description="Resolution at which PDF pages are rendered, before scaling to max_pixels.",
    )
    pdf_renderer: PdfRenderer = Field(
        default="auto",
        description="PDF renderer: pdfium, poppler, or auto (pdfium, then poppler if pdfium cannot read the file).",
    )
    pdf_max_pages: int | None = Field(
        default=50,
        ge=1,
        description=(
            "Most pages of one PDF or multi-frame TIFF in one request. Longer documents are refused "
            "unless the request selects at most this many pages. Batch jobs in per_page mode make "
            "one row per page and apply no limit. None: no limit."
        ),
    )
    pdf_timeout_s: float = Field(
        default=60,
        gt=0,
        description="Wall-clock limit for rendering one PDF, in seconds; the renderer is killed when it is hit.",
    )

    @model_validator(mode="after")
    def _check_budget(self) -> PreprocessOptions:
        if self.min_pixels is not None and self.max_pixels is not None and self.min_pixels > self.max_pixels:
            if "min_pixels" in self.model_fields_set:
                raise ValueError(f"min_pixels ({self.min_pixels}) is larger than max_pixels ({self.max_pixels})")
            # The default minimum yields to a budget set below it (a tiny model's, a test's).
            object.__setattr__(self, "min_pixels", self.max_pixels)
        return self


class SamplingConfig(BaseModel):
    """How tokens are chosen. Greedy by default: extraction wants the most likely answer."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="Sampling temperature; 0 is greedy.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_tokens: int = Field(
        default=2048,
        ge=1,
        description="Most tokens generated per result; an output cut here is reported invalid, never repaired.",
    )
    seed: int | None = Field(default=None, description="Sampling seed, for reproducible non-greedy runs.")
    repetition_penalty: float = Field(default=1.0, gt=0.0, le=2.0, description="vLLM repetition penalty.")
    top_k: int = Field(default=0, ge=0, description="Sample from the k most likely tokens; 0 considers all.")
    stop: list[str] | None = Field(
        default=None, description="Strings that end generation (a JSON answer cut by one is reported invalid)."
    )


class PlacementConfig(BaseModel):
    """What one engine (a Serve replica or a batch actor) reserves on a Ray cluster.

    Read by :func:`docextract.cluster.placement.engine_placement`, the one place that
    turns it into Ray resource requests for both front doors.
    """

    model_config = ConfigDict(extra="forbid")

    accelerator: Literal["auto", "gpu", "cpu"] = Field(
        default="auto",
        description="Where engines run on Ray: gpu (tensor_parallel_size GPUs each), cpu, or auto (gpu if the cluster has GPUs).",
    )
    accelerator_type: str | None = Field(
        default=None, description="Ray accelerator type an engine's node must have, e.g. L4 or A10G."
    )
    cpus_per_engine: float = Field(default=1.0, ge=0.0, description="Ray CPUs reserved by each engine.")
    device_resource: str | None = Field(
        default=None,
        description="Ray resource that takes the GPUs' place when engines run on CPU: each engine reserves "
        "tensor_parallel_size units of it (a CPU test bed's stand-in for GPUs).",
    )
    custom_resources: dict[str, float] = Field(
        default_factory=dict,
        description='Extra Ray resources each engine reserves, e.g. {"ssd": 1} for nodes that advertise it.',
    )


class ExtractionConfig(BaseModel):
    """Everything that decides how an extraction runs: model, engine, decoding, preprocessing."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(default=DEFAULT_MODEL, description="Hugging Face model id or local model directory.")
    served_model_name: str | None = Field(
        default=None, description="Name clients use for this model (default: the model id)."
    )
    dtype: str = Field(
        default="auto",
        description="Weights dtype: auto, bfloat16, float16, float32 (auto: the checkpoint's; float32 on an x86 "
        "CPU without native bfloat16, where bfloat16 is emulated 20x slower: docextract.models.dtype).",
    )
    max_model_len: int | None = Field(
        default=16384, ge=256, description="Context length (prompt + output); bounds KV-cache memory."
    )
    tensor_parallel_size: int = Field(default=1, ge=1, description="GPUs one engine spans (tensor parallelism).")
    gpu_memory_utilization: float = Field(
        default=0.9, gt=0.0, le=1.0, description="Fraction of each GPU's memory vLLM may take."
    )
    max_num_seqs: int | None = Field(default=None, ge=1, description="Most requests vLLM batches at once.")
    enforce_eager: bool = Field(default=False, description="Skip graph capture/compilation (faster start).")
    trust_remote_code: bool = Field(default=False, description="Allow model code from the model repository.")
    structured_output_backend: Literal["xgrammar", "guidance"] = Field(
        default="xgrammar", description="Grammar backend that enforces the schema."
    )
    confidence: bool = Field(
        default=True,
        description="Score each field from the log-probabilities of the tokens that wrote it (docextract.confidence).",
    )
    logprobs_mode: Literal["processed_logprobs", "raw_logprobs"] = Field(
        default="processed_logprobs",
        description="vLLM's log-probabilities behind the confidence: after temperature and penalties (processed) "
        "or before (raw); both are after the grammar's mask.",
    )
    review_threshold: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Fields whose confidence is below this are listed in 'review'."
    )
    disable_any_whitespace: bool = Field(
        default=True, description="Compact JSON: no free whitespace between tokens (faster, bounded)."
    )
    max_images_per_prompt: int = Field(default=8, ge=1, description="Most images in one prompt (whole-document mode).")
    chunk_overlap: int = Field(
        default=1,
        ge=0,
        description="Document mode, when the pages do not fit one prompt (max_images_per_prompt, or the context): "
        "pages each chunk of consecutive pages shares with the next (list items read twice there are dropped "
        "in the merge). Kept below the chunk size.",
    )
    merge_strategy: MergeStrategy = Field(
        default="deterministic",
        description="How chunk results become one: deterministic (lists concatenated, overlap duplicates "
        "dropped, each value from the chunk most confident of it; docextract.merge) or model (one more "
        "constrained call given the chunk results as text).",
    )
    include_schema_in_prompt: bool = Field(
        default=True, description="Show the JSON Schema to the model in the prompt as well as enforcing it."
    )
    schema_store: list[str] = Field(
        default_factory=list,
        description="Directories and files of JSON Schemas that a schema's $ref to another document may name, "
        "found by $id or file name and bundled into the schema; references are never fetched "
        "(docextract.schema.store).",
    )
    system_prompt: str | None = Field(default=None, description="Optional system message before the task.")
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    preprocess: PreprocessOptions = Field(default_factory=PreprocessOptions)
    placement: PlacementConfig = Field(default_factory=PlacementConfig)
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra vLLM AsyncEngineArgs, passed through unchecked."
    )

    @model_validator(mode="after")
    def _model_min_pixels(self) -> ExtractionConfig:
        # Unless the user chose a minimum, images are scaled up to the model family's (read from
        # the model's files where they are on this machine). Resolved once, here, so the CLI,
        # the service's ingress and replicas and a batch job's stages all scale alike: a config
        # that is serialised and loaded again carries the value, set.
        budget = self.preprocess
        if "min_pixels" not in budget.model_fields_set and budget.min_pixels is not None:
            minimum = model_min_pixels(self.model)
            if budget.max_pixels is not None:
                minimum = min(minimum, budget.max_pixels)
            if minimum != budget.min_pixels:
                self.preprocess = budget.model_copy(update={"min_pixels": minimum})
        return self

    @property
    def model_name(self) -> str:
        """The name results and APIs report for this model."""
        if self.served_model_name:
            return self.served_model_name
        # A local directory is named by its last part, never by a server path clients cannot know;
        # a Hugging Face id ("Qwen/Qwen2.5-VL-3B-Instruct") is its own name.
        path = pathlib.Path(self.model)
        if path.is_absolute() or self.model.startswith(".") or path.is_dir():
            return path.name or self.model
        return self.model


def read_config_file(path: str | pathlib.Path) -> dict[str, Any]:
    """The mapping in a YAML (or JSON) settings file; an empty file is ``{}``.

    Raises:
        DocExtractError: unreadable file, invalid YAML, or not a mapping, as one line.
    """
    import yaml

    path = pathlib.Path(path)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DocExtractError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise DocExtractError(f"{path}: not valid YAML: {exc}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise DocExtractError(f"{path}: a config file must hold a mapping of settings")
    return loaded or {}


def unwrap_optional(annotation: Any) -> Any:
    """``X | None`` -> ``X``; any other annotation as it is."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def nested_settings(model_cls: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """The fields of ``model_cls`` that are settings models themselves (``sampling``,
    ``preprocess``, ``placement``; a ``deployment``'s ``autoscaling``), with their models."""
    nested = {}
    for name, field in model_cls.model_fields.items():
        annotation = unwrap_optional(field.annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            nested[name] = annotation
    return nested


def merge_overrides(
    data: Mapping[str, Any], overrides: Mapping[str, Any], model_cls: type[BaseModel] = ExtractionConfig
) -> dict[str, Any]:
    """``data`` (settings as read from a file) with ``overrides`` (from flags) applied, as a new mapping.

    For a field of ``model_cls`` that is a settings model (:func:`nested_settings`), a mapping
    of overrides updates the file's block value by value, so ``--max-tokens`` keeps the file's
    ``sampling.temperature``; any other value, free-form mappings such as ``engine_kwargs``
    included, replaces the file's.
    """
    merged = dict(data)
    nested = nested_settings(model_cls)
    for key, value in overrides.items():
        if key in nested and isinstance(value, Mapping):
            merged[key] = {**(merged.get(key) or {}), **value}
        else:
            merged[key] = value
    return merged


def load_config(path: str | pathlib.Path | None = None, **overrides: Any) -> ExtractionConfig:
    """Load an :class:`ExtractionConfig` from YAML or JSON (or defaults), then apply overrides
    (:func:`merge_overrides`)."""
    data = merge_overrides(read_config_file(path) if path is not None else {}, overrides)
    from pydantic import ValidationError

    try:
        return ExtractionConfig.model_validate(data)
    except ValidationError as exc:
        raise DocExtractError(f"invalid configuration: {validation_problems(exc)}") from None
