"""The weights' dtype vLLM gets: ``auto`` resolved where the checkpoint's own would be slow.

Checkpoints such as Qwen2.5-VL's declare ``bfloat16``, which vLLM's ``auto``
keeps. On an x86 CPU without native bfloat16 arithmetic (no AVX512-BF16 and no
AMX: AVX2-only machines, many AMD EPYC and older Xeon parts) every bfloat16
matrix product is emulated: measured on such a 2-core AMD EPYC, a 300x1024 by
1024x2816 product took 2,036 ms in bfloat16 against 90 ms in float32, and the
bench model generated at 0.17 images/s where an AVX-512 machine of the same
size ran 3.6. There ``auto`` becomes ``float32`` (twice the weights' memory: 12
GB for a 3B model instead of 6). A dtype the user names is kept as given, and a
GPU, or a CPU with native bfloat16, keeps ``auto``.
"""

from __future__ import annotations

import platform

__all__ = ["engine_dtype", "native_bfloat16"]


def native_bfloat16() -> bool:
    """Whether this machine's CPU computes bfloat16 natively (non-x86 CPUs are taken to)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return True
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def engine_dtype(requested: str, *, cpu: bool) -> str:
    """``requested`` (ExtractionConfig.dtype) as vLLM should get it on this machine."""
    if requested == "auto" and cpu and not native_bfloat16():
        return "float32"
    return requested
