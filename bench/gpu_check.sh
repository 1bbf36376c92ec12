#!/usr/bin/env bash
# GPU check: run the pipeline's stages with train.device=cuda on the demo digits and verify that
#   - the train stage ran on cuda with AMP on,
#   - test metrics are within tolerance of the committed CPU reference (metrics/test.json),
#   - and print training throughput (median samples/s over epochs).
# Usage (on a machine with a CUDA GPU, from the repo root):  bash bench/gpu_check.sh [TOLERANCE]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tolerance=${1:-0.01}
python - <<'PY' || { echo "gpu_check: no CUDA device: nothing to check"; exit 2; }
import torch, sys
sys.exit(0 if torch.cuda.is_available() else 1)
PY
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$root/src" "$root/stages" "$root/params.yaml" "$work/"
cd "$work"
export PYTHONPATH="$work/src"
python -m torchstages.cli demo-data data/raw >/dev/null
python - <<'PY'
import yaml
p = yaml.safe_load(open("params.yaml"))
p["train"]["device"] = "cuda"
yaml.safe_dump(p, open("params.yaml", "w"), sort_keys=False)
PY
python stages/split.py 2>/dev/null
python stages/build_dataset.py 2>/dev/null
python stages/train.py 2> train.log
python stages/test.py 2>/dev/null
cat train.log | head -3
python - "$root/metrics/test.json" "$tolerance" <<'PY'
import json, re, statistics, sys
log = open("train.log").read()
reference, tolerance = json.load(open(sys.argv[1])), float(sys.argv[2])
gpu = json.load(open("metrics/test.json"))
checks = {
    "train ran on cuda": bool(re.search(r"device cuda", log)),
    "AMP on (bf16 or fp16)": bool(re.search(r"precision (bf16|fp16)", log)),
    f"test accuracy within {tolerance} of CPU": abs(gpu["accuracy"] - reference["accuracy"]) <= tolerance,
}
rates = [float(r) for r in re.findall(r"([0-9.]+) samples/s", log)]
print(f"test accuracy: gpu {gpu['accuracy']:.4f}  cpu reference {reference['accuracy']:.4f}")
print(f"train throughput: median {statistics.median(rates[1:] or rates):.0f} samples/s "
      f"over {len(rates)} epochs (first epoch excluded: warm-up)")
for name, ok in checks.items():
    print(f"{'PASS' if ok else 'FAIL'}  {name}")
sys.exit(0 if all(checks.values()) else 1)
PY
