"""One configuration model for every front door.

:class:`ExtractionConfig` is what the CLI, the Serve ``args:`` block and the
batch job all validate against (``extra="forbid"``: a misspelt key is an error,
not a silent default). CLI options are generated from its fields
(:func:`docextract.cli_options.add_config_arguments`), so a default is written
once, here. ``engine_kwargs`` is the one free-form pass-through, straight to
vLLM's ``AsyncEngineArgs``.
"""

from __future__ import annotations

import pathlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from docextract.documents import PreprocessOptions
from docextract.errors import DocExtractError, validation_problems

__all__ = ["DEFAULT_MODEL", "ExtractionConfig", "PlacementConfig", "SamplingConfig", "load_config", "read_config_file"]

#: The production default: small enough for one 24 GB GPU, good at documents.
DEFAULT_MODEL = "Qwen/Qwen2.5-VL-3B-Instruct"


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


class PlacementConfig(BaseModel):
    """What one engine (a Serve replica or a batch actor) reserves on a Ray cluster.

    Read by :func:`docextract.placement.engine_placement`, the one place that
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
    dtype: str = Field(default="auto", description="Weights dtype: auto, bfloat16, float16, float32.")
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
    disable_any_whitespace: bool = Field(
        default=True, description="Compact JSON: no free whitespace between tokens (faster, bounded)."
    )
    max_images_per_prompt: int = Field(default=8, ge=1, description="Most images in one prompt (whole-document mode).")
    include_schema_in_prompt: bool = Field(
        default=True, description="Show the JSON Schema to the model in the prompt as well as enforcing it."
    )
    system_prompt: str | None = Field(default=None, description="Optional system message before the task.")
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    preprocess: PreprocessOptions = Field(default_factory=PreprocessOptions)
    placement: PlacementConfig = Field(default_factory=PlacementConfig)
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra vLLM AsyncEngineArgs, passed through unchecked."
    )

    @property
    def model_name(self) -> str:
        """The name results and APIs report for this model."""
        return self.served_model_name or self.model


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


def load_config(path: str | pathlib.Path | None = None, **overrides: Any) -> ExtractionConfig:
    """Load an :class:`ExtractionConfig` from YAML or JSON (or defaults), then apply overrides."""
    data: dict[str, Any] = read_config_file(path) if path is not None else {}
    for key, value in overrides.items():
        if key in ("sampling", "preprocess", "placement") and isinstance(value, dict):
            data[key] = {**(data.get(key) or {}), **value}
        else:
            data[key] = value
    from pydantic import ValidationError

    try:
        return ExtractionConfig.model_validate(data)
    except ValidationError as exc:
        raise DocExtractError(f"invalid configuration: {validation_problems(exc)}") from None
