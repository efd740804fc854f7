#!/usr/bin/env bash
# Set up this machine and run one real extraction end to end: the bundled sample
# invoice (a PNG and a 2-page PDF) through vLLM with JSON-Schema-constrained decoding.
#
# With no model given it builds and uses the tiny random-weight test model, so it
# runs offline on a CPU in about a minute: its outputs conform to the schema but
# their values are meaningless. For real extractions:
#   MODEL=Qwen/Qwen2.5-VL-3B-Instruct bash scripts/quickstart.sh   (needs the model
#   in the Hugging Face cache or network access, and a GPU for useful speed)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-$([ -z "${MODEL:-}" ] && echo 1 || echo 0)}"
if [ -z "${MODEL:-}" ]; then
  MODEL=$(.venv/bin/docextract tiny-model .cache/tiny-qwen2vl)
  extra=(--max-model-len 4096)
else
  extra=()
fi
mkdir -p out
.venv/bin/docextract extract docextract/samples/invoice.png docextract/samples/invoice.pdf \
  --task invoice --model "$MODEL" "${extra[@]}" --output out/quickstart.jsonl
echo "quickstart: $(wc -l < out/quickstart.jsonl) results in out/quickstart.jsonl:"
.venv/bin/python - <<'PY'
import json
for line in open("out/quickstart.jsonl"):
    r = json.loads(line)
    print(f"  {r['id']}: valid={r['valid']} tokens={r['usage']['completion_tokens']} data={json.dumps(r['data'])[:160]}...")
PY
