#!/usr/bin/env bash
# Train on a lent GPU in ONE device call and bring the models back (docs/training.md, "On a GPU").
#
# Here, once per session (the data must travel with the call; ../shared does not):
#   mkdir -p .device_data && cp -r ../shared/data/train400 .device_data/
#   grep -qx '/.device_data/' .git/info/exclude || echo /.device_data/ >> .git/info/exclude
# Then the device tool's run, with carry [".device_data"] and timeout_s 600:
#   bash scripts/device_train.sh 6
# It trains the recipes below side by side on the one GPU for MINUTES each (default 6; the
# call, the GPU's start and the transfers must fit the session's 15 device minutes, one call
# at most 10), then measures denoising speed on the GPU and its CPU
# (benchmarks/bench_devices.py, about a minute), and writes under $OUT:
# <recipe>.safetensors (EMA weights) for each recipe and records.tar.gz (sidecars, training
# logs, console logs, the speed table, the GPU's description). Fetched here, they lie under files_at:
#   mkdir -p runs/gpu && tar xzf <files_at>/records.tar.gz -C runs/gpu
#   cp <files_at>/*.safetensors runs/gpu/
# and each model loads by path (runs/gpu/<recipe>.safetensors) for benchmarks/bench_denoise.py
# --model. DRY=1 runs a few CPU steps of the same commands (a check before spending GPU time).
set -uo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-6}
RECIPES=${RECIPES:-"gpu_warm_restart gpu_deep"}
OUT=${OUT:-runs/device_out}
DATA=${DATA:-.device_data/train400}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT" runs/device_records
field() { python3 -c "import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "recipes/$1.json" "$2"; }
outdir() { if [ "${DRY:-0}" = 1 ]; then echo "$(field "$1" output)_dry"; else field "$1" output; fi; }
extra=()
if [ "${DRY:-0}" = 1 ]; then
    extra=(--device cpu --steps 2)
fi
{
    date -u +%FT%TZ
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
    python3 -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
} > runs/device_records/device.txt
[ -d "$DATA" ] || { echo "training images not found at $DATA (see the header of $0)"; exit 2; }
pids=()
for r in $RECIPES; do
    python3 -m napari_diffdenoise.cli train --config "recipes/$r.json" --fresh \
        --output "$(outdir "$r")" --train-dir "$DATA" --max-minutes "$MINUTES" "${extra[@]}" \
        > "runs/device_records/$r.console.log" 2>&1 &
    pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
for r in $RECIPES; do
    dir=$(outdir "$r")
    name=$(field "$r" name)
    cp "$dir/$name.safetensors" "$OUT/$r.safetensors" 2>/dev/null || echo "no model from $r"
    cp "$dir/$name.json" "runs/device_records/$r.json" 2>/dev/null
    cp "$dir/train_log.jsonl" "runs/device_records/$r.train_log.jsonl" 2>/dev/null
    tail -3 "runs/device_records/$r.console.log"
done
if [ "${DRY:-0}" = 1 ]; then bench=(--sizes 128 --repeats 1); else bench=(--sizes 512,2048); fi
timeout 150 python3 benchmarks/bench_devices.py "${bench[@]}" > runs/device_records/bench_devices.md 2>&1
tail -20 runs/device_records/bench_devices.md
tar czf "$OUT/records.tar.gz" -C runs/device_records .
ls -l "$OUT"
exit $rc
