#!/usr/bin/env bash
# RESULTS.md, "Zero-shot transfer: Games -> ML-100K": a Games-trained text SASRec (frozen
# all-MiniLM-L6-v2 items) scores ML-100K's users with no training there, against popularity, the same
# model untrained, and the same model trained on ML-100K, all on ML-100K's leave-one-out protocol.
# Usage: scripts/results/zero_shot.sh [ML100K_DIR] [AMAZON_GAMES_DIR] [OUTPUT_DIR]
set -euo pipefail
ML100K=${1:-../shared/data/ml-100k}
GAMES=${2:-../shared/data/amazon-games}
OUT=${3:-outputs/results}
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1  # one thread: 2 shared cores
RECFIT=${RECFIT:-recfit}  # e.g. RECFIT=.venv/bin/recfit
PYTHON=${PYTHON:-python}
common="paths.output_dir=$OUT trainer.enable_progress_bar=false"
# The MoRec table's fixed budget (scripts/results/morec_games.sh): 200 steps of 256 prefixes
small="trainer.max_epochs=1 dataset.batch_size=256 trainer.limit_train_batches=200 trainer.limit_val_batches=5"
ml100k="experiment=games_sasrec_text_zero_shot_ml100k dataset.reader.path=$ML100K $common"
last() { ls -d "$OUT/$1"/* | tail -n 1; }

# Two Games parents: the small budget (seed 1, as the MoRec table's row) and one full epoch (141 steps
# of 2,048; validation on 5 batches only picks the checkpoint; no Games test)
$RECFIT train experiment=games_sasrec_text dataset.reader.path="$GAMES" $small seed=1 \
  experiment_name=zs_games_parent $common
$RECFIT train experiment=games_sasrec_text dataset.reader.path="$GAMES" trainer.max_epochs=1 \
  trainer.limit_val_batches=5 test=false experiment_name=zs_games_parent_1ep $common
# Zero-shot: each parent on ML-100K's leave-one-out protocol, no training there
$RECFIT eval "$(last runs/zs_games_parent)" $ml100k experiment_name=zs_games_zero_shot
$RECFIT eval "$(last runs/zs_games_parent_1ep)" $ml100k experiment_name=zs_games_1ep_zero_shot
# Popularity on ML-100K (training-split counts)
$RECFIT train $ml100k model=popularity backbone=none model.user_encoder.name=id experiment_name=zs_popularity
# The same text SASRec, random init, no training (max_epochs=0: validation and test score the initial weights)
$RECFIT train $ml100k trainer.max_epochs=0 experiment_name=zs_random_init
# The same text SASRec trained on ML-100K: the small budget, one epoch (48 steps of 2,048), five epochs
$RECFIT train $ml100k $small experiment_name=zs_ml100k_trained_200x256
$RECFIT train $ml100k trainer.max_epochs=1 experiment_name=zs_ml100k_trained
$RECFIT train $ml100k trainer.max_epochs=5 experiment_name=zs_ml100k_trained_5ep

# Each row's mean and 95% bootstrap CI over the 943 test users
$PYTHON "$(dirname "$0")/user_ci.py" \
  "zero-shot, small parent=$(last evals/zs_games_zero_shot)" \
  "zero-shot, 1-epoch parent=$(last evals/zs_games_1ep_zero_shot)" \
  "popularity=$(last runs/zs_popularity)" "random init=$(last runs/zs_random_init)" \
  "ML-100K small=$(last runs/zs_ml100k_trained_200x256)" "ML-100K 1 epoch=$(last runs/zs_ml100k_trained)" \
  "ML-100K 5 epochs=$(last runs/zs_ml100k_trained_5ep)"
# Paired differences against the zero-shot row (paired t over users, paired bootstrap CI)
$RECFIT compare "$OUT"/evals/zs_games_{zero_shot,1ep_zero_shot} \
  "$OUT"/runs/zs_{popularity,random_init,ml100k_trained_200x256,ml100k_trained,ml100k_trained_5ep} \
  --include-evals --group-by experiment_name --baseline experiment_name=zs_games_zero_shot --test users \
  --metric test/ndcg@10,test/recall@10 --format markdown
