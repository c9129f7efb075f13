"""Leak-free labels (training.labels) and the label-trained front-ends (training.supervised)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from crysatom_featurizers.embeddings import ElementEmbedding
from crysatom_featurizers.nn import load_encoder
from tests.prototypes import perovskite, rock_salt
from training import supervised
from training.labels import (
    LABEL_TASKS,
    LabelTask,
    build_label_set,
    excluded_formulas,
    formula_checksum,
)

CATIONS = ["Li", "Na", "K", "Mg", "Ca", "Sr", "Ba"]
ANIONS = ["F", "Cl", "O", "S"]


def _frames() -> dict[str, pd.DataFrame]:
    """A JARVIS-like and an MP-like frame of rock salts and perovskites with made-up labels."""
    rng = np.random.default_rng(0)
    jarvis, mp = [], []
    for i, (a, b) in enumerate((a, b) for a in CATIONS for b in ANIONS):
        s = rock_salt(a, b, 4.0 + 0.1 * i % 1.5)
        jarvis.append(
            {
                "jarvis_index": i,
                "formula": s.composition.reduced_formula,
                "structure": s,
                "formation_energy_peratom": -1.0 - 0.05 * i,
                "mbj_bandgap": float(i % 5) if i % 2 else np.nan,
                "bulk_modulus_kv": 50.0 + i,
                "shear_modulus_gv": 20.0 + i,
            }
        )
    for i, a in enumerate(CATIONS):
        s = perovskite(a, "Ti", 3.9 + 0.02 * i)
        mp.append(
            {
                "material_id": f"mp-{i}",
                "formula": s.composition.formula,  # not reduced, as in the MP set
                "structure": s,
                "formation_energy_per_atom": -2.0 + rng.normal(0, 0.1),
            }
        )
    # the MP set also has the rock salt LiF, relaxed separately
    s = rock_salt("Li", "F", 4.05)
    mp.append(
        {
            "material_id": "mp-99",
            "formula": "Li2F2",
            "structure": s,
            "formation_energy_per_atom": -3.1,
        }
    )
    return {
        "jarvis": pd.DataFrame(jarvis).set_index("jarvis_index"),
        "mp": pd.DataFrame(mp).set_index("material_id"),
    }


def _write_splits(path, frames, jarvis_held_out, mp_held_out=()):
    path.mkdir(parents=True, exist_ok=True)
    ids = [int(i) for i in frames["jarvis"].index]
    jarvis_held_out = [int(i) for i in jarvis_held_out]
    train = [i for i in ids if i not in jarvis_held_out]
    split = {"dataset": "jarvis", "train": train, "val": list(jarvis_held_out[:1]),
             "test": list(jarvis_held_out[1:])}  # fmt: skip
    (path / "formation_energy_peratom.json").write_text(json.dumps(split))
    mp_ids = list(frames["mp"].index)
    mp_split = {"dataset": "mp", "train": [i for i in mp_ids if i not in mp_held_out],
                "val": [], "test": list(mp_held_out)}  # fmt: skip
    (path / "formation_energy_per_atom.json").write_text(json.dumps(mp_split))
    return path


def test_a_planted_test_crystal_is_removed_from_every_dataset(tmp_path):
    frames = _frames()
    lif = int(frames["jarvis"].index[frames["jarvis"]["formula"] == "LiF"][0])
    splits = _write_splits(tmp_path / "splits", frames, [lif, 5])
    excluded, info = excluded_formulas(frames, splits)
    assert "LiF" in excluded and info["n_formulas"] == 2
    assert info["formula_checksum"] == formula_checksum(excluded)

    labels = build_label_set(frames, splits_dir=splits)
    kept = set(labels.frame["reduced_formula"])
    assert not kept & excluded
    # LiF is held out in JARVIS: the MP copy of LiF ("Li2F2") goes too, by reduced formula
    assert "mp-99" not in set(labels.frame["source_id"])
    guard = labels.info["leak_guard"]
    assert guard["removed_crystals"] == {"jarvis": 2, "mp": 1}
    assert guard["kept_crystals"]["jarvis"] == len(frames["jarvis"]) - 2
    assert guard["formula_checksum"] == info["formula_checksum"]
    assert set(guard["splits"]) == {
        "formation_energy_peratom.json",
        "formation_energy_per_atom.json",
    }


def test_labels_are_masked_per_task_and_moduli_are_never_labels(tmp_path):
    frames = _frames()
    splits = _write_splits(tmp_path / "splits", frames, [0])
    labels = build_label_set(frames, splits_dir=splits)
    y = labels.targets()
    assert y.shape == (len(labels.frame), 3)
    from_mp = (labels.frame["dataset"] == "mp").to_numpy()
    assert np.isnan(y[from_mp, 0]).all() and np.isfinite(y[from_mp, 2]).all()
    assert np.isnan(y[~from_mp, 2]).all()
    assert labels.info["unseen_properties"] == ["bulk_modulus_kv", "shear_modulus_gv"]
    assert not any("modulus" in c for c in labels.frame.columns)
    with pytest.raises(ValueError, match="unseen"):
        build_label_set(
            frames,
            [LabelTask("bulk", "jarvis", "bulk_modulus_kv", "GPa", "bulk_modulus_kv")],
            splits_dir=splits,
        )
    # the front-end split is by formula and the same every time
    again = build_label_set(frames, splits_dir=splits)
    assert list(again.frame["fold"]) == list(labels.frame["fold"])
    by_formula = labels.frame.groupby("reduced_formula")["fold"].nunique()
    assert (by_formula == 1).all()


def test_guard_refuses_unknown_datasets_and_ids(tmp_path):
    frames = _frames()
    splits = _write_splits(tmp_path / "splits", frames, [0])
    with pytest.raises(KeyError, match="dataset 'mp'"):
        excluded_formulas({"jarvis": frames["jarvis"]}, splits)
    (splits / "formation_energy_peratom.json").write_text(
        json.dumps({"dataset": "jarvis", "train": [], "val": [999], "test": []})
    )
    with pytest.raises(KeyError, match="not in the 'jarvis' data"):
        excluded_formulas(frames, splits)
    with pytest.raises(FileNotFoundError, match="no benchmark split"):
        excluded_formulas(frames, tmp_path / "empty")


def test_masked_losses_ignore_missing_labels():
    out = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
    target = torch.tensor([[0.0, float("nan")], [1.0, 1.0]])
    # task 0: (1 + 4) / 2; task 1: 16 / 1
    assert float(supervised.masked_mse(out, target)) == pytest.approx(2.5 + 16.0)
    # crystal 0: |1| over 1 label; crystal 1: (2 + 4) / 2
    assert float(supervised.masked_abs_sum(out, target)) == pytest.approx(1.0 + 3.0)


def _tiny_config(kind: str) -> dict:
    frontend = (
        {"kind": "cgcnn", "embedding": "onehot", "atom_fea_len": 8, "n_conv": 1, "h_fea_len": 8}
        if kind == "cgcnn"
        else {"kind": "transformer", "d_model": 16, "n_layers": 1, "n_heads": 2,
              "dim_feedforward": 16, "readout": "mean", "distance_bias": True, "max_sites": 8}
    )  # fmt: skip
    return {
        "frontend_val_modulus": 3,
        "defaults": {"threads": 1, "batch_size": 8, "lr": 0.01, "epochs": 3, "patience": 5},
        "frontends": {"tiny": frontend},
    }


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["cgcnn", "transformer"])
def test_train_frontend_writes_vectors_with_the_guard_and_resumes(tmp_path, kind):
    frames = _frames()
    splits = _write_splits(tmp_path / "splits", frames, [0, 1])
    kwargs = dict(
        frames=frames,
        results_dir=tmp_path / "results",
        runs_dir=tmp_path / "runs",
        splits_dir=splits,
    )
    cfg = _tiny_config(kind)
    summary = supervised.train_frontend(cfg, "tiny", max_epochs=2, **kwargs)
    assert summary["epochs_run"] == 2 and summary["stopped_by"] == "epoch cap (2)"
    # run again with the full cap: resumes after epoch 2 instead of starting over
    summary = supervised.train_frontend(cfg, "tiny", **kwargs)
    assert summary["epochs_run"] == 3 and len(summary["history"]["epoch"]) == 3
    assert set(summary["validation_mae"]) == {t.name for t in LABEL_TASKS}

    vectors = ElementEmbedding.from_json(tmp_path / "results" / "tiny" / "uae_tiny.json")
    assert vectors.name == "uae_tiny"
    assert vectors.dim == (8 if kind == "cgcnn" else 8)
    assert set(vectors.symbols) == set(summary["element_training_counts"])
    guard = vectors.metadata["leak_guard"]
    assert guard["removed_crystals"]["jarvis"] == 2
    assert vectors.metadata["unseen_properties"] == ["bulk_modulus_kv", "shear_modulus_gv"]
    encoder_file = tmp_path / "runs" / "tiny" / "encoder.pt"
    assert encoder_file.exists() == (kind == "cgcnn")
    if kind == "cgcnn":
        encoder, meta = load_encoder(encoder_file)
        assert encoder.in_dim == 103 and meta["input_embedding"] == "onehot"
        concat = ElementEmbedding.from_json(tmp_path / "results" / "tiny" / "uae_tiny_concat.json")
        assert concat.dim == 8 * 2 and set(concat.symbols) == set(vectors.symbols)
        np.testing.assert_allclose(np.linalg.norm(concat.vectors, axis=1), 1.0, rtol=1e-6)

    # a checkpoint of other settings is refused, not silently restarted
    cfg["frontends"]["tiny"]["lr"] = 0.5
    with pytest.raises(ValueError, match="another run"):
        supervised.train_frontend(cfg, "tiny", **kwargs)


def test_unknown_frontends_and_tasks_fail_before_any_work():
    cfg = {"frontends": {"a": {"kind": "cgcnn", "tasks": ["bulk_modulus"]}}}
    with pytest.raises(KeyError, match="unknown front-end 'b'"):
        supervised.frontend_settings(cfg, "b")
    with pytest.raises(ValueError, match="unknown tasks"):
        supervised.frontend_settings(cfg, "a")
    shipped = supervised.load_config("supervised_cpu")
    for name in shipped["frontends"]:
        assert supervised.frontend_settings(shipped, name)["kind"] in ("cgcnn", "transformer")


def test_main_passes_the_runs_folder(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_train(cfg, name, **kwargs):
        seen.update(kwargs, name=name)
        return {"best_epoch": 1, "epochs_run": 1, "train_wall_time_s": 0.0,
                "validation_mae": {"t": {"mae": 0.1, "unit": "eV"}}}  # fmt: skip

    monkeypatch.setattr(supervised, "train_frontend", fake_train)
    supervised.main(["--frontend", "cgcnn_mt", "--runs-dir", str(tmp_path / "ckpt")])
    assert seen["name"] == "cgcnn_mt" and seen["runs_dir"] == str(tmp_path / "ckpt")
    supervised.main(["--frontend", "cgcnn_mt"])
    assert seen["runs_dir"] == str(supervised.RUNS_DIR)
    assert "cgcnn_mt: best epoch 1 of 1" in capsys.readouterr().out
