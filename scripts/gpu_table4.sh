#!/usr/bin/env bash
# The Table-4 core (τ=1, τ=5, τ=100, Cooldown, 1→5, τ warm-up, late upsampling) × 3 seeds at ≈20M
# and ≈85M parameters on one GPU, then the two reports and which verdicts move with size.
#
#   scripts/gpu_table4.sh [OUT]                  # on a GPU machine: ≤ 8 min on one H100 (target)
#   DEVICE=cpu TINY=1 scripts/gpu_table4.sh OUT   # the CPU dry run (tiny sizes; a slow test runs it)
#
# Compare GPU numbers only with GPU baselines: the CPU presets' numbers come from other hardware.
set -euo pipefail
OUT=${1:-gpu_out}
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-6}
COOLMIX=${COOLMIX:-coolmix}
extra=(--set "run.device=$DEVICE")
if [[ -n "${TINY:-}" ]]; then  # seconds: a 1-layer d=16 model, 24 steps, 2 seeds
  extra+=(--set model.d_model=16 --set model.n_head=2 --set model.d_ff=32 --set model.n_layer=1
          --set run.total_steps=24 --set run.eval_every=12 --set run.batch_size=8 --seeds 0,1)
fi
for size in 20m 85m; do
  "$COOLMIX" reproduce --preset "gpu-$size" --out "$OUT/$size" --workers "$WORKERS" "${extra[@]}"
done
"$COOLMIX" ablation --label "20M=$OUT/20m" --label "85M=$OUT/85m" --out "$OUT/by_size.md"
echo "reports: $OUT/20m/report.md $OUT/85m/report.md; verdicts by size: $OUT/by_size.md"
