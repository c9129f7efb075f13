"""Ship the label-trained element vectors and encoder that win on validation, as ``uae``.

The candidates are the vector files of :mod:`training.supervised`
(``training/results/supervised/<frontend>/uae_<frontend>.json``), listed under
``curve.label_candidates`` of the learning-curve config. The learning-curve benchmark ranks them
on validation MAE only (:func:`training.benchmark.curve.candidate_selection`, against ``cgcnn``,
at ``curve.label_select_sizes``); each front-end's own validation MAE is recorded beside. The
chosen vectors are written to ``crysatom_featurizers/embeddings/data/uae_<dim>.json`` under
the name ``uae``, with the candidates, scores, criterion and choice in their metadata.

The encoder is that of the multi-task CGCNN front-end among the candidates with the lowest
front-end validation loss (``--encoder-only`` ships it before the learning curve has run) (a transformer's attention layers are no CGCNN encoder), copied from
``training/runs/supervised/<frontend>/encoder.pt`` to
``crysatom_featurizers/nn/data/uae_encoder_<width>.pt`` with the same selection record.

Usage::

    python -m training.ship_label_vectors --run training/results/bench_curve \\
        [--config training/configs/bench_curve.yaml]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from crysatom_featurizers.embeddings import ElementEmbedding, resolve
from crysatom_featurizers.embeddings.builtin import DATA_DIR, TRAINED_EMBEDDINGS
from crysatom_featurizers.nn import load_encoder, save_encoder
from crysatom_featurizers.nn.pretrained import ENCODER_DATA_DIR, SHIPPED_ENCODERS, file_sha256
from training.benchmark.config import BenchConfig, resolve_path
from training.benchmark.results import ResultsFile
from training.labels import LABEL_TASKS
from training.provenance import git_commit
from training.supervised import RESULTS_DIR, RUNS_DIR

#: Name under which the chosen vectors and encoder are served.
SHIPPED_NAME = "uae"


def frontend_of(label: str) -> str:
    """The front-end of a candidate label: ``"uae_cgcnn_mt"`` and ``"uae_cgcnn_mt_concat"``
    (its depth read-out) -> ``"cgcnn_mt"``."""
    return label.removeprefix(f"{SHIPPED_NAME}_").removesuffix("_concat")


def frontend_summary(frontend: str, results_dir: Path = RESULTS_DIR) -> dict[str, Any]:
    """The ``summary.json`` that :mod:`training.supervised` wrote for ``frontend``."""
    path = results_dir / frontend / "summary.json"
    if not path.exists():
        raise FileNotFoundError(f"no summary of front-end {frontend!r} at {path}")
    return json.loads(path.read_text())


def _trained(label: str, results_dir: Path = RESULTS_DIR) -> bool:
    return (results_dir / frontend_of(label) / "summary.json").exists()


def frontend_records(labels: Sequence[str], results_dir: Path = RESULTS_DIR) -> dict[str, Any]:
    """What each candidate's front-end run recorded: validation loss and MAE, tasks, cost."""
    frontends = {}
    for label in labels:
        summary = frontend_summary(frontend_of(label), results_dir)
        frontends[label] = {
            "validation_loss": summary["validation_loss"],
            "validation_mae": summary["validation_mae"],
            "architecture": summary["architecture"],
            "tasks": summary["settings"]["tasks"],
            "epochs_run": summary["epochs_run"],
            "best_epoch": summary["best_epoch"],
            "stopped_by": summary.get("stopped_by"),
            "train_wall_time_s": summary["train_wall_time_s"],
        }
    return frontends


def selection_record(
    run_dir: Path, cfg: BenchConfig, results_dir: Path = RESULTS_DIR
) -> tuple[str, dict[str, Any]]:
    """The chosen candidate label and the record of how it was chosen."""
    from training.benchmark.curve import candidate_selection

    labels = list(cfg.curve.get("label_candidates", []))
    if not labels:
        raise ValueError("the config lists no curve.label_candidates")
    untrained = [lab for lab in labels if not _trained(lab, results_dir)]
    labels = [lab for lab in labels if lab not in untrained]
    sizes = [int(n) for n in cfg.curve.get("label_select_sizes", (100,))]
    frame = ResultsFile(run_dir / "results.csv").read()
    table = candidate_selection(frame, run_dir, labels, sizes)
    chosen = table.loc[table["chosen"], "candidate"]
    if chosen.empty:
        raise ValueError(f"no label candidate has validation scores in {run_dir}")
    frontends = frontend_records(labels, results_dir)
    record = {
        "criterion": (
            "validation MAE of CGCNN on the candidate vectors (early stopping, the fixed 500 "
            "validation crystals of the learning curve) divided by the cgcnn features' in the "
            f"same property, size and seed; geometric mean over the cells at n = {sizes} that "
            "every candidate has; the lowest wins. The test set played no part."
        ),
        "candidates": table.to_dict("records"),
        "frontends": frontends,
        "chosen": str(chosen.iloc[0]),
        "not_trained": untrained,
        "results": f"training/results/{run_dir.name}/results.csv",
        "selected": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "selection_git_commit": git_commit(),
    }
    return str(chosen.iloc[0]), record


def ship_vectors(label: str, record: dict[str, Any], cfg: BenchConfig, out_dir: Path) -> Path:
    """Write the chosen candidate's vectors as ``out_dir/uae_<dim>.json`` (name ``uae``), with
    the selection ``record`` in their metadata.

    Raises
    ------
    ValueError
        If the candidate is not an embedding of the config, or its dimension is not one the
        registry serves under ``uae``.
    """
    specs = {Path(str(s)).name.split(".")[0]: s for s in cfg.embeddings}
    if label not in specs:
        raise ValueError(f"candidate {label!r} is not among the config's embeddings")
    candidate = resolve(str(resolve_path(specs[label])), None)
    metadata = {k: v for k, v in candidate.metadata.items() if k != "checksum"}
    metadata["selection"] = record
    dims = TRAINED_EMBEDDINGS[SHIPPED_NAME]["dims"]
    if candidate.dim not in dims:
        raise ValueError(
            f"the chosen vectors have {candidate.dim} dimensions; the registry serves "
            f"{SHIPPED_NAME!r} at {list(dims)} (add the dimension to TRAINED_EMBEDDINGS first)"
        )
    shipped = ElementEmbedding(SHIPPED_NAME, candidate.symbols, candidate.vectors, metadata)
    path = out_dir / f"{SHIPPED_NAME}_{shipped.dim}.json"
    shipped.to_json(path)
    return path


def ship_encoder(record: dict[str, Any], out_dir: Path, runs_dir: Path = RUNS_DIR) -> Path:
    """Write the encoder of the best multi-task CGCNN front-end of ``record`` (its
    ``frontends``, see :func:`frontend_records`) as ``out_dir/uae_encoder_<width>.pt``, with
    the selection in its metadata.

    Only front-ends trained on every label task compete (their validation losses sum the
    same tasks over the same formulas).

    Raises
    ------
    ValueError
        If no multi-task CGCNN front-end is among the candidates, or the file name would not
        be the one the package serves under ``uae``.
    """
    every_task = sorted(t.name for t in LABEL_TASKS)
    cgcnn = {
        label: info
        for label, info in record["frontends"].items()
        if info["architecture"].get("model") == "CGCNN"
        and sorted(info.get("tasks", every_task)) == every_task
    }
    if not cgcnn:
        raise ValueError("no multi-task CGCNN front-end among the candidates: no encoder to ship")
    label = min(cgcnn, key=lambda k: cgcnn[k]["validation_loss"])
    source = runs_dir / frontend_of(label) / "encoder.pt"
    encoder, metadata = load_encoder(source)
    metadata = {k: v for k, v in metadata.items() if k != "checksum"}
    metadata["selection"] = {
        "criterion": "the CGCNN front-end with the lowest validation loss on its own "
        "validation formulas (summed standardised MSE of its tasks)",
        "candidates": {k: v["validation_loss"] for k, v in cgcnn.items()},
        "chosen": label,
        "frontends": record["frontends"],
    }
    path = out_dir / f"{SHIPPED_NAME}_encoder_{encoder.hidden_dim}.pt"
    if path.name != SHIPPED_ENCODERS[SHIPPED_NAME][0]:
        raise ValueError(
            f"the chosen encoder would be {path.name}; the package serves "
            f"{SHIPPED_ENCODERS[SHIPPED_NAME][0]!r} as {SHIPPED_NAME!r}"
        )
    save_encoder(encoder, path, metadata)
    print(
        f"{path}: SHA-256 {file_sha256(path)}; pin it as SHIPPED_ENCODER_SHA256[{SHIPPED_NAME!r}]"
    )
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.ship_label_vectors", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--run", required=True, help="benchmark run folder (results.csv)")
    parser.add_argument("--config", default="training/configs/bench_curve.yaml")
    parser.add_argument("--out", default=str(DATA_DIR), help="folder of the vector files")
    parser.add_argument("--encoder-out", default=str(ENCODER_DATA_DIR), help="encoder folder")
    parser.add_argument(
        "--encoder-only",
        action="store_true",
        help="ship the encoder alone (it is chosen on the front-ends' own validation, so it "
        "needs no learning-curve results)",
    )
    args = parser.parse_args(argv)
    cfg = BenchConfig.from_yaml(args.config)
    if args.encoder_only:
        labels = list(cfg.curve.get("label_candidates", []))
        trained = [
            lab for lab in labels if (RESULTS_DIR / frontend_of(lab) / "summary.json").exists()
        ]
        if trained != labels:
            print(f"not trained yet, left out: {sorted(set(labels) - set(trained))}")
        record = {"frontends": frontend_records(trained)}
        print(f"wrote {ship_encoder(record, Path(args.encoder_out))}")
        return 0
    label, record = selection_record(Path(args.run), cfg)
    print(pd.DataFrame(record["candidates"]).to_string(index=False))
    print(f"wrote {ship_vectors(label, record, cfg, Path(args.out))}")
    print(f"wrote {ship_encoder(record, Path(args.encoder_out))}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
