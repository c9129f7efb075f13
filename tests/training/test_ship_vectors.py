"""Shipping the CrysAtom vectors chosen on validation (training/ship_vectors.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crysatom_featurizers.embeddings import ElementEmbedding
from training.benchmark.config import BenchConfig
from training.benchmark.results import row_fit_id
from training.ship_vectors import main, ship

SYMBOLS = ["H", "O", "Fe", "Na", "Cl"]


def _run(tmp_path, val: dict[str, list[float]]) -> tuple:
    """A run folder with validation histories for cgcnn and two candidates (two seeds)."""
    rng = np.random.default_rng(0)
    candidate = ElementEmbedding.from_dict(
        {s: rng.normal(size=6) for s in SYMBOLS},
        name="crysatom_6_concat",
        metadata={"readout": "concat"},
    )
    path = tmp_path / "crysatom_6_concat.json"
    candidate.to_json(path)
    run = tmp_path / "bench_curve"
    (run / "histories").mkdir(parents=True)
    rows = []
    for label, scores in val.items():
        for seed, score in enumerate(scores):
            row = {
                "experiment": "curve", "property": "p", "unit": "eV", "embedding": label,
                "seed": seed, "train_fraction": 0.1, "n_train": 16, "test_mae": 9.9,
                "best_epoch": 2, "epochs_run": 4, "fit_seconds": 1.0, "model": "cgcnn",
            }  # fmt: skip
            rows.append(row)
            history = pd.DataFrame({"epoch": [1, 2, 3], "val_mae": [5.0, score, 7.0]})
            history.to_csv(run / "histories" / f"{row_fit_id(row)}.csv", index=False)
    pd.DataFrame(rows).to_csv(run / "results.csv", index=False)
    cfg = BenchConfig.from_dict(
        {
            "name": "bench_curve",
            "properties": [{"name": "p", "dataset": "synthetic", "column": "p", "unit": "eV"}],
            "embeddings": ["cgcnn", str(path), "random:16"],
            "curve": {"candidates": ["crysatom_6_concat", "random_16"], "select_sizes": [16]},
        }
    )
    return run, cfg, candidate


def test_ship_writes_the_validation_winner_with_its_selection(tmp_path):
    run, cfg, candidate = _run(
        tmp_path, {"cgcnn": [1.0, 1.0], "crysatom_6_concat": [0.9, 0.95], "random_16": [1.2, 1.3]}
    )
    out = tmp_path / "data"
    out.mkdir()
    path = ship(run, cfg, out)
    assert path == out / "crysatom_6.json.gz"
    shipped = ElementEmbedding.from_json(path)
    assert shipped.name == "crysatom" and shipped.checksum == candidate.checksum
    selection = shipped.metadata["selection"]
    assert selection["chosen"] == "crysatom_6_concat"
    assert [c["candidate"] for c in selection["candidates"]] == ["crysatom_6_concat", "random_16"]
    assert "test set played no part" in selection["criterion"]
    assert shipped.metadata["readout"] == "concat"


def test_ship_nothing_when_a_registry_embedding_wins(tmp_path, capsys):
    run, cfg, _ = _run(
        tmp_path, {"cgcnn": [1.0, 1.0], "crysatom_6_concat": [1.5, 1.4], "random_16": [0.9, 0.9]}
    )
    assert ship(run, cfg, tmp_path) is None
    assert "already served" in capsys.readouterr().out


def test_ship_without_scores_is_an_error(tmp_path):
    run, cfg, _ = _run(tmp_path, {"cgcnn": [1.0, 1.0]})
    with pytest.raises(ValueError, match="no candidate has validation scores"):
        ship(run, cfg, tmp_path)
    with pytest.raises(SystemExit):
        main([])
