#!/usr/bin/env bash
# Regenerate every shipped vector file in crysatom_featurizers/embeddings/data/.
#
#   bash training/regenerate_vectors.sh            # cpu config (2 CPU cores, < 2 h)
#   CONFIG=paper bash training/regenerate_vectors.sh   # the paper's settings (use a GPU)
#
# Needs the shared corpus in ../shared/data (or $CRYSATOM_DATA_DIR). Logs, checkpoints and run
# summaries go to training/runs/; each vector file records its config, corpus checksum, epochs,
# final losses, hardware, wall time and git commit in its metadata.
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG="${CONFIG:-cpu}"
DATA=crysatom_featurizers/embeddings/data
RUNS=training/runs
mkdir -p "$RUNS"

# Atom2Vec comparator (Zhou et al. 2018) on the same corpus: 50, 100, 200 dimensions.
python -m training.atom2vec --dims 50 100 200 --out "$DATA"

# Graph caches for the configured training corpus and for the extraction corpus (the whole
# de-duplicated corpus), built once and shared by the three runs.
python -m training.pretrain --config "$CONFIG" --prepare-only

if [ "$CONFIG" = "cpu" ]; then
    # The three dimensions side by side, one thread each (2 shared cores); each run stops at an
    # epoch boundary when its time budget is spent.
    for DIM in 200 100 50; do
        case $DIM in 200) BUDGET=4800 ;; 100) BUDGET=4200 ;; 50) BUDGET=3600 ;; esac
        python -m training.pretrain --config cpu --dim "$DIM" --threads 1 \
            --time-budget "$BUDGET" --out "$RUNS/cpu_d$DIM" \
            --vectors "$DATA/crysatom_$DIM.json" > "$RUNS/cpu_d$DIM.log" 2>&1 &
    done
    wait
else
    # On GPUs: torchrun --nproc_per_node N -m training.pretrain ... works the same way.
    for DIM in 200 100 50; do
        python -m training.pretrain --config "$CONFIG" --dim "$DIM" --out "$RUNS/${CONFIG}_d$DIM" \
            --vectors "$DATA/crysatom_$DIM.json"
    done
fi

python -c "
from crysatom_featurizers.embeddings import load
for d in (50, 100, 200):
    e = load('crysatom', dim=d)
    print('crysatom', d, len(e), 'elements, epochs', e.metadata.get('epochs_run'))
"
