#!/usr/bin/env bash
# Set up this machine and run the main job end to end: a batch extraction of the
# bundled sample invoice (a PNG and a 2-page PDF) on an embedded local Ray, with
# vLLM's JSON-Schema-constrained decoding (CPU vLLM when there is no GPU). Output:
# out/quickstart/ (labelr-layout Parquet parts, config.json, summary.json).
#
# With no model given it builds and uses the tiny random-weight test model, so it
# runs offline on a CPU in a few minutes: its outputs conform to the schema but
# their values are meaningless. For real extractions:
#   MODEL=Qwen/Qwen2.5-VL-3B-Instruct bash scripts/quickstart.sh   (needs the model
#   in the Hugging Face cache or network access, and a GPU for useful speed)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-$([ -z "${MODEL:-}" ] && echo 1 || echo 0)}"
if [ -z "${MODEL:-}" ]; then
  MODEL=$(.venv/bin/docextract tiny-model .cache/tiny-qwen2vl)
  extra=(--max-model-len 4096 --max-pixels 50176)
else
  extra=()
fi
rm -rf out/quickstart
.venv/bin/docextract batch --input docextract/samples --output out/quickstart \
  --task invoice --model "$MODEL" "${extra[@]}"
.venv/bin/python - <<'PY'
import json, pyarrow.parquet as pq, glob
rows = pq.read_table(sorted(glob.glob("out/quickstart/part-*.parquet"))).to_pylist()
print(f"quickstart: {len(rows)} rows in out/quickstart/ (labelr layout, config.json, summary.json):")
for r in sorted(rows, key=lambda r: r["image_id"]):
    print(f"  {r['image_id']}: valid={r['valid']} output={(r['output'] or r['error'])[:140]}...")
PY
