"""Choose the composition featurizers' default vectors on the matminer workflow's validation.

The CrysAtom default of 1,200 numbers per element was chosen on CGCNN validation; as
composition features (5 statistics) it makes 6,000 columns. This script scores the
matminer workflow itself (composition features + ``HistGradientBoostingRegressor``, the
``matminer`` section of the learning-curve config) on the learning curve's fixed validation
crystals, never the test set, for each candidate vector set, on every property and training
size of the config. A candidate's score is the geometric mean over the cells of its validation
MAE divided by that of the reference (``magpie``); the lowest CrysAtom candidate becomes the
``CrysAtom*`` featurizers' default, and the best candidate overall is reported for the generic
featurizers.

Usage::

    python -m training.featurizer_defaults --config training/configs/bench_curve.yaml \\
        --candidates crysatom crysatom:200 crysatom:100 crysatom:50 uae magpie \\
        --out training/results/featurizer_defaults
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from crysatom_featurizers.embeddings import resolve, spec_label
from crysatom_featurizers.io import atomic_write_text
from training.benchmark.config import BenchConfig
from training.benchmark.harness import Benchmark
from training.provenance import cpu_model, git_commit

REFERENCE = "magpie"


def validation_scores(
    cfg: BenchConfig,
    candidates: Sequence[str],
    sizes: Sequence[int],
    data_dir: str | None = None,
) -> pd.DataFrame:
    """Validation MAE of composition features + HGB, one row per candidate x property x size."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    from crysatom_featurizers.featurizers import ElementEmbeddingCompositionFeaturizer

    mm = cfg.matminer
    stats = tuple(mm.get("stats", ("mean", "std_dev", "min", "max", "range")))
    hgb = dict(mm.get("hgb", {}))
    bench = Benchmark(cfg, Path("training/cache/featurizer_defaults"), data_dir=data_dir)
    rows = []
    for spec in bench.properties_for("matminer"):
        data = bench.property_data(spec)
        val = data.val if cfg.max_val is None else data.val[: cfg.max_val]
        frame = bench.dataset(spec.dataset)
        comp_val = [s.composition for s in frame.loc[val, "structure"]]
        y_val = bench.targets(spec, val)
        for size in sizes:
            train = data.budget(None, 1.0, int(size))
            comp_train = [s.composition for s in frame.loc[train, "structure"]]
            y_train = bench.targets(spec, train)
            for candidate in candidates:
                emb = resolve(candidate, None)
                t0 = time.perf_counter()
                feat = ElementEmbeddingCompositionFeaturizer(emb, stats=stats)
                x_train, x_val = feat.featurize_many(comp_train), feat.featurize_many(comp_val)
                model = HistGradientBoostingRegressor(random_state=0, **hgb)
                with threadpool_limits(limits=mm.get("n_threads")):
                    model.fit(x_train, y_train)
                    pred = model.predict(x_val)
                rows.append(
                    {
                        "property": spec.name,
                        "n_train": int(size),
                        "candidate": spec_label(candidate),
                        "dim": int(emb.dim),
                        "columns": int(x_train.shape[1]),
                        "val_mae": float(np.mean(np.abs(pred - y_val))),
                        "seconds": time.perf_counter() - t0,
                    }
                )
                print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def rank(scores: pd.DataFrame, reference: str = REFERENCE) -> pd.DataFrame:
    """Geometric mean of each candidate's validation MAE / the reference's, over the cells
    (property x size) that every candidate has."""
    table = scores.pivot_table(index=["property", "n_train"], columns="candidate", values="val_mae")
    ratios = np.log(table.div(table[reference], axis=0)).dropna()
    columns = scores.groupby("candidate")["columns"].first()
    out = pd.DataFrame(
        {
            "candidate": ratios.columns,
            "columns": [int(columns[c]) for c in ratios.columns],
            "n_cells": len(ratios),
            "val_ratio_to_reference": np.exp(ratios.mean()).to_numpy(),
        }
    )
    return out.sort_values("val_ratio_to_reference").reset_index(drop=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.featurizer_defaults", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--config", default="training/configs/bench_curve.yaml")
    parser.add_argument("--candidates", nargs="+", required=True, help="embedding specs")
    parser.add_argument("--sizes", nargs="+", type=int, default=[100, 300, 1000])
    parser.add_argument("--out", default="training/results/featurizer_defaults")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    if REFERENCE not in args.candidates:
        parser.error(f"--candidates must include the reference {REFERENCE!r}")
    cfg = BenchConfig.from_yaml(args.config)
    t0 = time.perf_counter()
    scores = validation_scores(cfg, args.candidates, args.sizes, args.data_dir)
    ranking = rank(scores)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "validation.csv", scores.to_csv(index=False))
    crysatom = ranking[ranking["candidate"].str.startswith("crysatom")]
    record = {
        "criterion": "composition features (stats of the config's matminer section) + "
        "HistGradientBoostingRegressor, fitted on the learning curve's nested training sets and "
        f"scored on its fixed validation crystals (never the test set); geometric mean over "
        f"properties x sizes {args.sizes} of validation MAE / {REFERENCE}'s",
        "ranking": ranking.to_dict("records"),
        "crysatom_choice": None if crysatom.empty else str(crysatom["candidate"].iloc[0]),
        "best_overall": str(ranking["candidate"].iloc[0]),
        "wall_time_s": round(time.perf_counter() - t0, 1),
        "hardware": {"cpu": cpu_model(), "threads": cfg.matminer.get("n_threads")},
        "git_commit": git_commit(),
    }
    atomic_write_text(out / "choice.json", json.dumps(record, indent=1))
    print(ranking.to_string(index=False))
    print(f"CrysAtom composition default: {record['crysatom_choice']}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
