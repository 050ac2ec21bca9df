#!/usr/bin/env bash
# The MoRec table on Amazon Games (issue 14): ID vs text item towers, each under a SASRec user encoder
# and under the ID user encoder (two-tower / DSSM), plus popularity, all on `experiment=games_sasrec_text`
# (leave-one-out, full ranking over all 16,859 items), every row on the same fixed training budget.
#
# Usage (from the repository root):
#   OUT=/work/runs-morec/table bash scripts/results/morec_games.sh ROW:SEED [ROW:SEED ...]
#   e.g.  ... pop:0 id_sasrec:1 text_sasrec:1 id_twotower:1
# Rows: pop, id_sasrec, text_sasrec, text_id_sasrec, text_ft_sasrec, id_twotower, text_twotower,
#       text_id_twotower. Jobs run PARALLEL (default 2) at a time, one thread each.
# Budget (environment, the same for every row): BATCH (default 256) examples per step, STEPS (200)
# steps in one epoch, VAL_BATCHES (5) validation batches of 1,024 users (they only pick the checkpoint);
# the test split is always all 50,546 users. The table:
#   recfit compare $OUT --group-by experiment_name --metric test/ndcg@10,test/recall@10 --cold-items 5 \
#       --baseline experiment_name=morec_id_sasrec --format markdown
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
DATA=${DATA:-/work/shared/data/amazon-games}
OUT=${OUT:?set OUT to the folder the runs go under}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
BUDGET="trainer.max_epochs=1 dataset.batch_size=${BATCH:-256} trainer.limit_train_batches=${STEPS:-200}"
BUDGET="$BUDGET trainer.limit_val_batches=${VAL_BATCHES:-5} trainer.enable_progress_bar=false"

row_overrides() {
  case "$1" in
    pop) echo "backbone=none model=popularity model.user_encoder.name=id" ;;  # nothing trained
    id_sasrec) echo "backbone=none model=mf" ;;
    text_sasrec) echo "" ;;  # the experiment itself: frozen MiniLM items
    text_id_sasrec) echo "model.item_id_embedding=true" ;;
    text_ft_sasrec) echo "backbone.freeze=4 loss.negatives=sampled" ;;
    id_twotower) echo "backbone=none model=mf model.user_encoder.name=id" ;;
    text_twotower) echo "model.user_encoder.name=id" ;;
    text_id_twotower) echo "model.item_id_embedding=true model.user_encoder.name=id" ;;
    *) echo "unknown row $1" >&2; return 1 ;;
  esac
}

one_job() {
  local row=${1%%:*} seed=${1##*:}
  local extra
  extra=$(row_overrides "$row")
  # shellcheck disable=SC2086  # the overrides are words
  "$PYTHON" -m recfit train experiment=games_sasrec_text dataset.reader.path="$DATA" $extra $BUDGET \
    seed="$seed" experiment_name="morec_$row" paths.output_dir="$OUT" >"$OUT/logs/$row-$seed.log" 2>&1 \
    && echo "done $row seed $seed" || echo "FAILED $row seed $seed (see $OUT/logs/$row-$seed.log)"
}
export -f one_job row_overrides
export PYTHON DATA OUT BUDGET
mkdir -p "$OUT/logs"
printf '%s\n' "$@" | xargs -P "${PARALLEL:-2}" -I{} bash -c 'one_job {}'
