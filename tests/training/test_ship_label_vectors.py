"""Shipping the label-trained vectors and encoder chosen on validation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from crysatom_featurizers.embeddings import ElementEmbedding
from crysatom_featurizers.nn import CGCNNEncoder, load_encoder, save_encoder
from training.benchmark.config import BenchConfig
from training.benchmark.results import row_fit_id
from training.ship_label_vectors import selection_record, ship_encoder, ship_vectors

SYMBOLS = ["H", "O", "Fe", "Na", "Cl"]


def _setup(tmp_path, val: dict[str, list[float]]):
    rng = np.random.default_rng(0)
    results, runs = tmp_path / "supervised", tmp_path / "runs"
    specs = []
    for frontend, model, loss in (
        ("cgcnn_mt", "CGCNN", 0.5),
        ("ct_geometry", "CrystalTransformer", 0.4),
    ):
        folder = results / frontend
        folder.mkdir(parents=True)
        vectors = ElementEmbedding.from_dict(
            {s: rng.normal(size=64) for s in SYMBOLS},
            name=f"uae_{frontend}",
            metadata={"leak_guard": {"removed_crystals": {"jarvis": 3}}},
        )
        vectors.to_json(folder / f"uae_{frontend}.json")
        specs.append(str(folder / f"uae_{frontend}.json"))
        summary = {
            "validation_loss": loss, "validation_mae": {"t": {"mae": loss}},
            "architecture": {"model": model}, "epochs_run": 9, "best_epoch": 4,
            "stopped_by": "early stopping", "train_wall_time_s": 10.0,
            "settings": {"tasks": ["jarvis_formation_energy", "jarvis_mbj_bandgap",
                                   "mp_formation_energy"]},
        }  # fmt: skip
        (folder / "summary.json").write_text(json.dumps(summary))
        if model == "CGCNN":
            (runs / frontend).mkdir(parents=True)
            save_encoder(
                CGCNNEncoder(103, 64, 1),
                runs / frontend / "encoder.pt",
                {"input_embedding": "onehot", "graph": {"radius": 8.0}},
            )
    run = tmp_path / "bench_curve"
    (run / "histories").mkdir(parents=True)
    rows = []
    for label, scores in val.items():
        for seed, score in enumerate(scores):
            row = {
                "experiment": "curve", "property": "p", "unit": "eV", "embedding": label,
                "seed": seed, "train_fraction": 0.1, "n_train": 100, "test_mae": 9.9,
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
            "embeddings": ["cgcnn", *specs],
            "curve": {
                "label_candidates": ["uae_cgcnn_mt", "uae_ct_geometry"],
                "label_select_sizes": [100],
            },
        }
    )
    return run, cfg, results, runs


def test_the_validation_winner_ships_as_uae_with_its_record(tmp_path):
    run, cfg, results, runs = _setup(
        tmp_path,
        {"cgcnn": [1.0, 1.0], "uae_cgcnn_mt": [0.8, 0.85], "uae_ct_geometry": [0.9, 1.1]},
    )
    label, record = selection_record(run, cfg, results)
    assert label == "uae_cgcnn_mt"
    assert "test set played no part" in record["criterion"]
    assert record["frontends"]["uae_ct_geometry"]["validation_loss"] == 0.4
    out = tmp_path / "data"
    out.mkdir()
    path = ship_vectors(label, record, cfg, out)
    shipped = ElementEmbedding.from_json(path)
    assert path.name == "uae_64.json" and shipped.name == "uae"
    assert shipped.metadata["leak_guard"]["removed_crystals"] == {"jarvis": 3}
    assert shipped.metadata["selection"]["chosen"] == "uae_cgcnn_mt"

    # the encoder: the CGCNN front-end (the transformer has none), with the record
    encoder_path = ship_encoder(record, out, runs)
    encoder, meta = load_encoder(encoder_path)
    assert encoder_path.name == "uae_encoder_64.pt" and encoder.in_dim == 103
    assert meta["selection"]["chosen"] == "uae_cgcnn_mt"
    assert meta["input_embedding"] == "onehot"


def test_no_scores_no_candidates_no_encoder_are_errors(tmp_path):
    run, cfg, results, runs = _setup(tmp_path, {"cgcnn": [1.0, 1.0]})
    with pytest.raises(ValueError, match="no label candidate has validation scores"):
        selection_record(run, cfg, results)
    cfg.curve["label_candidates"] = []
    with pytest.raises(ValueError, match="no curve.label_candidates"):
        selection_record(run, cfg, results)
    record = {"frontends": {"uae_ct": {"architecture": {"model": "CrystalTransformer"}}}}
    with pytest.raises(ValueError, match="no multi-task CGCNN front-end"):
        ship_encoder(record, tmp_path, runs)
    single = {"architecture": {"model": "CGCNN"}, "tasks": ["jarvis_formation_energy"]}
    with pytest.raises(ValueError, match="no multi-task CGCNN front-end"):
        ship_encoder({"frontends": {"uae_cgcnn_ef": single}}, tmp_path, runs)


def test_a_width_the_registry_does_not_serve_is_refused(tmp_path):
    run, cfg, results, _ = _setup(
        tmp_path, {"cgcnn": [1.0, 1.0], "uae_cgcnn_mt": [0.8, 0.8], "uae_ct_geometry": [1.0, 1]}
    )
    label, record = selection_record(run, cfg, results)
    small = ElementEmbedding.from_dict({"H": [0.0, 1.0]}, name="uae_cgcnn_mt")
    small.to_json(results / "cgcnn_mt" / "uae_cgcnn_mt.json")
    with pytest.raises(ValueError, match="serves 'uae' at"):
        ship_vectors(label, record, cfg, tmp_path)
