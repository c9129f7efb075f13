#!/usr/bin/env bash
# SSL-loss ablation (CrysAtom paper Table 10) at a reduced budget: Barlow Twins, VICReg,
# NT-Xent and no SSL term (reconstruction losses only), all with the cpu config at dim 50 and
# the same number of epochs, then the element-property probe on the four vector sets.
# Vectors and probe tables go to training/results/ssl_ablation/ (not the shipped data folder).
#   bash training/run_ssl_ablation.sh                  # train the four runs, extract, probe
#   EXTRACT_ONLY=1 bash training/run_ssl_ablation.sh   # re-extract from their checkpoints
set -euo pipefail
cd "$(dirname "$0")/.."

DIM="${DIM:-50}"
EPOCHS="${EPOCHS:-20}"
OUT=training/results/ssl_ablation
RUNS=training/runs
mkdir -p "$OUT" "$RUNS"

python -m training.pretrain --config cpu --prepare-only
if [ "${EXTRACT_ONLY:-0}" = "1" ]; then
    # Re-extract the vectors from the runs' checkpoints (e.g. after an extraction change).
    for SSL in bt vicreg ntxent none; do
        python -m training.pretrain --config cpu --dim "$DIM" --ssl "$SSL" --extract-only \
            --threads 1 --no-progress --out "$RUNS/ablation_${SSL}_d$DIM" \
            --vectors "$OUT/crysatom_${DIM}_$SSL.json"
    done
else
    for SSL in bt vicreg ntxent none; do
        python -m training.pretrain --config cpu --dim "$DIM" --ssl "$SSL" --epochs "$EPOCHS" \
            --threads 1 --time-budget 100000 --out "$RUNS/ablation_${SSL}_d$DIM" \
            --vectors "$OUT/crysatom_${DIM}_$SSL.json" > "$RUNS/ablation_${SSL}_d$DIM.log" 2>&1 &
    done
    wait
fi

python - "$OUT" "$DIM" <<'PY'
import sys
from pathlib import Path

from crysatom_featurizers.embeddings import ElementEmbedding
from training.probe import probe_embedding

out, dim = Path(sys.argv[1]), sys.argv[2]
rows = []
for ssl in ("bt", "vicreg", "ntxent", "none"):
    emb = ElementEmbedding.from_json(out / f"crysatom_{dim}_{ssl}.json")
    table = probe_embedding(emb)
    table.insert(0, "ssl", ssl)
    rows.append(table)
    meta = emb.metadata
    print(ssl, "epochs", meta["epochs_run"], "final", meta["final_losses"],
          "mean R2", round(float(table["r2_best"].mean()), 3))
import pandas as pd

long = pd.concat(rows, ignore_index=True)
long.to_csv(out / f"probe_d{dim}.csv", index=False)
summary = long.groupby("ssl", sort=False)["r2_best"].mean().round(3)
(out / f"probe_d{dim}.md").write_text(
    f"# SSL ablation, dim {dim}: element-property probe (mean best R², 5 targets)\n\n"
    + summary.to_frame("mean_r2").to_markdown() + "\n"
)
print(summary)
PY
