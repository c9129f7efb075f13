"""Ship the CrysAtom vectors that win on validation as the package's ``crysatom`` file.

The candidates are vector files of the learning-curve benchmark (``curve.candidates`` of
``training/configs/bench_curve.yaml``): the shipped final-layer vectors and the read-outs of
``python -m training.readouts``. The benchmark ranks them on validation MAE only
(``candidates.csv``, :func:`training.benchmark.curve.candidate_selection`). This script copies
the chosen file into ``crysatom_featurizers/embeddings/data/crysatom_<dim>.json`` under the
name ``crysatom``, with the candidates, their scores, the criterion and the choice in its
metadata (``selection``). When the chosen candidate is the final layer already shipped, it
writes nothing.

Usage::

    python -m training.ship_vectors --run training/results/bench_curve \\
        [--config training/configs/bench_curve.yaml] \\
        [--out crysatom_featurizers/embeddings/data]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from crysatom_featurizers.embeddings import ElementEmbedding, resolve, spec_label
from crysatom_featurizers.embeddings.builtin import DATA_DIR
from training.benchmark.config import BenchConfig, resolve_path
from training.benchmark.results import ResultsFile
from training.provenance import git_commit

#: Name under which the chosen vectors are served.
SHIPPED_NAME = "crysatom"


def chosen_candidate(run_dir: Path, cfg: BenchConfig) -> tuple[str, pd.DataFrame]:
    """The label chosen on validation and the ranking, recomputed from the run's results."""
    from training.benchmark.curve import candidate_selection

    frame = ResultsFile(run_dir / "results.csv").read()
    sizes = tuple(int(n) for n in cfg.curve.get("select_sizes", (100, 300)))
    table = candidate_selection(frame, run_dir, list(cfg.curve["candidates"]), sizes)
    chosen = table.loc[table["chosen"], "candidate"]
    if chosen.empty:
        raise ValueError(f"no candidate has validation scores in {run_dir}")
    return str(chosen.iloc[0]), table


def ship(run_dir: Path, cfg: BenchConfig, out_dir: Path) -> Path | None:
    """Write the chosen vectors as ``out_dir/crysatom_<dim>.json``; None when the chosen
    candidate is a file the registry already serves under ``crysatom``."""
    label, table = chosen_candidate(run_dir, cfg)
    specs = {spec_label(s): s for s in cfg.embeddings}
    spec = specs.get(label)
    if spec is None:
        raise ValueError(f"candidate {label!r} is not among the config's embeddings")
    if not str(spec).endswith(".json"):
        print(f"the chosen candidate {label!r} ({spec}) is already served; nothing to ship")
        return None
    candidate = resolve(str(resolve_path(spec)), None)
    sizes = [int(n) for n in cfg.curve.get("select_sizes", (100, 300))]
    selection: dict[str, Any] = {
        "criterion": (
            "validation MAE of CGCNN (early stopping, the fixed 500 validation crystals) on the "
            "bench_curve learning curve, divided by the cgcnn features' in the same property, "
            f"size and seed; geometric mean over the cells at n = {sizes} that every candidate "
            "has; the lowest wins. The test set played no part."
        ),
        "candidates": table.to_dict("records"),
        "chosen": label,
        "chosen_from": str(spec),
        "results": f"training/results/{run_dir.name}/candidates.csv",
        "selected": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "selection_git_commit": git_commit(),
    }
    metadata = {**candidate.metadata, "selection": selection}
    metadata.pop("checksum", None)
    shipped = ElementEmbedding(SHIPPED_NAME, candidate.symbols, candidate.vectors, metadata)
    path = out_dir / f"{SHIPPED_NAME}_{shipped.dim}.json.gz"  # 1,200 columns: compressed
    shipped.to_json(path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.ship_vectors", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--run", required=True, help="benchmark run folder (results.csv)")
    parser.add_argument("--config", default="training/configs/bench_curve.yaml")
    parser.add_argument("--out", default=str(DATA_DIR), help="folder of the shipped files")
    args = parser.parse_args(argv)
    path = ship(Path(args.run), BenchConfig.from_yaml(args.config), Path(args.out))
    if path is not None:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
