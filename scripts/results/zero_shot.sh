#!/usr/bin/env bash
# RESULTS.md, "Zero-shot transfer: Games -> ML-100K": a Games-trained text SASRec (frozen
# all-MiniLM-L6-v2 items) scores ML-100K's users with no training there, against popularity, the same
# model untrained, and the same model trained on ML-100K; one epoch of training for every trained row.
# Usage: scripts/results/zero_shot.sh [ML100K_DIR] [AMAZON_GAMES_DIR] [OUTPUT_DIR]
set -euo pipefail
ML100K=${1:-../shared/data/ml-100k}
GAMES=${2:-../shared/data/amazon-games}
OUT=${3:-outputs/results}
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1  # one thread: 2 shared cores
RECFIT=${RECFIT:-recfit}  # e.g. RECFIT=.venv/bin/recfit
PYTHON=${PYTHON:-python}
common="paths.output_dir=$OUT trainer.enable_progress_bar=false"
ml100k="experiment=games_sasrec_text_zero_shot_ml100k dataset.reader.path=$ML100K $common"

# The parent: text SASRec on Amazon Games, one epoch (141 steps of 2,048 prefixes)
$RECFIT train experiment=games_sasrec_text dataset.reader.path="$GAMES" trainer.max_epochs=1 \
  experiment_name=zs_games_parent $common
parent=$(ls -d "$OUT"/runs/zs_games_parent/* | tail -n 1)
# (a) zero-shot: the parent on ML-100K's leave-one-out protocol, no training there
$RECFIT eval "$parent" $ml100k experiment_name=zs_games_zero_shot
# (b) popularity trained on ML-100K (training-split counts)
$RECFIT train $ml100k model=popularity backbone=none model.user_encoder.name=id experiment_name=zs_popularity
# (c) the same text SASRec, random init, no training (max_epochs=0: the test scores the initial weights)
$RECFIT train $ml100k trainer.max_epochs=0 experiment_name=zs_random_init
# (d) the same text SASRec trained on ML-100K: one epoch (48 steps), and five
$RECFIT train $ml100k trainer.max_epochs=1 experiment_name=zs_ml100k_trained
$RECFIT train $ml100k trainer.max_epochs=5 experiment_name=zs_ml100k_trained_5ep

last() { ls -d "$OUT/$1"/* | tail -n 1; }
# Each row's mean and 95% bootstrap CI over the 943 test users
$PYTHON "$(dirname "$0")/user_ci.py" \
  "zero-shot=$(last evals/zs_games_zero_shot)" "popularity=$(last runs/zs_popularity)" \
  "random init=$(last runs/zs_random_init)" "ML-100K 1 epoch=$(last runs/zs_ml100k_trained)" \
  "ML-100K 5 epochs=$(last runs/zs_ml100k_trained_5ep)"
# Paired differences against the zero-shot row (paired t over users, paired bootstrap CI)
$RECFIT compare "$OUT/evals/zs_games_zero_shot" "$OUT"/runs/zs_{popularity,random_init,ml100k_trained,ml100k_trained_5ep} \
  --include-evals --group-by experiment_name --baseline experiment_name=zs_games_zero_shot --test users \
  --metric test/ndcg@10,test/recall@10 --format markdown
