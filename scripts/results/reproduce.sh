#!/usr/bin/env bash
# Re-create every number in RESULTS.md (2 CPU cores: about two hours, most of it the Amazon Games runs and
# the 96 runs of section 5).
# Usage: scripts/results/reproduce.sh [ML100K_DIR] [AMAZON_GAMES_DIR] [OUTPUT_DIR]
set -euo pipefail
ML100K=${1:-../shared/data/ml-100k}
GAMES=${2:-../shared/data/amazon-games}
OUT=${3:-outputs/results}
export HF_HUB_OFFLINE=1
RECFIT=${RECFIT:-recfit}  # e.g. RECFIT=.venv/bin/recfit
quiet="trainer.enable_progress_bar=false paths.output_dir=$OUT"

# 1. RecBole's ML-100K BPR row: 3 seeds, each also seeding the split (as RecBole's seed does)
$RECFIT train -m experiment=ml100k_bpr dataset.reader.path="$ML100K" seed=2020,2021,2022 'dataset.split_seed=${seed}' $quiet
# 2. Biased MF against Surprise SVD on the official folds u1-u5
$RECFIT train -m experiment=ml100k_svd_folds dataset.reader.path="$ML100K" split.fold=1,2,3,4,5 $quiet
# 3. RecBole's context-aware LR row (label: rating >= 4)
$RECFIT train experiment=ml100k_lr_ctr dataset.reader.path="$ML100K" $quiet
# 4. Transfer to cold items: pretrained MiniLM vs the same architecture with random weights vs mf
for experiment in ml100k_cold_transfer games_cold_transfer; do
  path=$ML100K; [ "$experiment" = games_cold_transfer ] && path=$GAMES
  $RECFIT train -m experiment=$experiment dataset.reader.path="$path" seed=1,2,3 \
    backbone.pretrained=true,false $quiet
  $RECFIT train -m experiment=$experiment dataset.reader.path="$path" seed=1,2,3 model=mf backbone=none $quiet
done
# 5. Data efficiency: 4 training fractions x 4 starting points x 3 seeds, cold-item and warm splits
"$(dirname "$0")/data_efficiency.sh" "$ML100K" "$GAMES" "$OUT"
