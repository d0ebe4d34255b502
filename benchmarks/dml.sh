#!/bin/bash
# Deep mutual learning (two cifar:resnet8 peers) vs the student trained alone, on an ImageFolder tree.
# Not a test. One CLI run per seed trains the student alone and the two peers (peer1 starts from the
# student alone's initial weights), same epochs and data, so each seed is a paired A/B comparison.
#   benchmarks/dml.sh EPOCHS MAX_TRAIN_SAMPLES [ROOT] [OUT]      e.g. benchmarks/dml.sh 4 1500
set -euo pipefail
EPOCHS=${1:-4}; N=${2:-1500}; ROOT=${3:-../shared/data/cifar10-subset}; OUT=${4:-benchmarks/results/dml}
cd "$(dirname "$0")/.."
for S in 0 1; do
  python -m edgedistill run src/edgedistill/recipes/imagefolder.yaml \
    data.root="$ROOT" distill.scheme=online "online.peers=[cifar:resnet8, cifar:resnet8]" \
    train.epochs="$EPOCHS" data.max_train_samples="$N" train.seed=$S train.threads=2 data.workers=1 \
    eval.latency_runs=5 eval.warmup_runs=1 output.dir="$OUT" output.name=dml-e$EPOCHS-n$N-s$S
done
python - "$OUT" <<'PY'
import json, sys, pathlib
for m in sorted(pathlib.Path(sys.argv[1]).glob("dml-*/metrics.json")):
    d = json.loads(m.read_text())["models"]
    print(m.parent.name, {k: round(v["top1"], 2) for k, v in d.items()})
PY
