#!/usr/bin/env bash
# RESULTS.md section 5: data efficiency on MovieLens-100K (cold-item and warm splits), 4 training
# fractions x 4 starting points x 3 seeds = 96 runs, plus one Amazon Games parent run.
# 2 CPU cores: about an hour. Usage: scripts/results/data_efficiency.sh [ML100K_DIR] [GAMES_DIR] [OUTPUT_DIR]
set -euo pipefail
ML100K=${1:-../shared/data/ml-100k}
GAMES=${2:-../shared/data/amazon-games}
OUT=${3:-outputs/results}
export HF_HUB_OFFLINE=1
RECFIT=${RECFIT:-recfit}  # e.g. RECFIT=.venv/bin/recfit
common="paths.output_dir=$OUT trainer.enable_progress_bar=false"
grid="split.train_fraction=0.1,0.25,0.5,1.0 seed=1,2,3"

# (b)'s parent: the two-tower trained on Amazon Games (frozen MiniLM + projection), in a fixed folder
PARENT=$OUT/parents/games_two_tower
if ! grep -q '"status": "completed"' "$PARENT/metrics.json" 2>/dev/null; then
  rm -rf "$PARENT"
  $RECFIT train experiment=games_cold_transfer dataset.reader.path="$GAMES" seed=1 quiet=true $common \
    hydra.run.dir="$PARENT"
fi

for split in cold_item ratio; do
  name=ml100k_data_efficiency_$split
  run() {  # $1: the starting point's name; the rest: its overrides
    local arm=$1; shift
    $RECFIT train -m experiment=ml100k_data_efficiency split=$split dataset.reader.path="$ML100K" $grid $common \
      experiment_name="${name}_$arm" "$@"
  }
  run mf model=mf backbone=none                  # (d) no content at all
  run pretrained backbone.pretrained=true        # (a) the pretrained MiniLM
  run games init_from.path="$PARENT"             # (b) the Games run: its MiniLM and item projection
  run random backbone.pretrained=false           # (c) the same architecture, random weights
done
