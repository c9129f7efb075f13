"""Heads on frozen potential features: choice on validation, the report's tables and targets."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

pytest.importorskip("sklearn")
from training.benchmark import potential_heads as heads  # noqa: E402
from training.benchmark.potential_report import choices, write_report  # noqa: E402


def test_element_fractions_sum_to_one_per_structure():
    nacl = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.69), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    x = heads.element_fractions([nacl])
    assert x.shape == (1, 103) and x.sum() == pytest.approx(1.0)
    assert x[0, 10] == pytest.approx(0.5) and x[0, 16] == pytest.approx(0.5)  # Na, Cl


def test_imputer_fills_failed_crystals_with_training_means():
    x = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 4.0]])
    imputer = heads._Imputer().fit(x)
    out = imputer.transform(np.array([[np.nan, np.nan]]))
    np.testing.assert_allclose(out, [[3.0, 3.0]])


def _synthetic_cell(monkeypatch, signal_group: str):
    rng = np.random.default_rng(0)
    n = 1000 + 200 + 300
    ids = list(range(n))
    y = rng.normal(size=n)
    noise = rng.normal(size=(n, 8))
    useful = np.column_stack([y + 0.05 * rng.normal(size=n), rng.normal(size=(n, 3))])
    groups = {"site_stats": noise, "state": noise[:, :2]}
    groups[signal_group] = useful
    frame = pd.concat(
        [
            pd.DataFrame(v, columns=pd.MultiIndex.from_product([[g], range(v.shape[1])]))
            for g, v in groups.items()
        ],
        axis=1,
    )
    frame.index = ids
    rows = {"train": ids[:1000], "val": ids[1000:1200], "test": ids[1200:]}
    targets = {k: y[v] for k, v in rows.items()}
    monkeypatch.setattr(heads, "SIZES", (100,))
    monkeypatch.setattr(heads, "MLP_MAX_CHUNKS", 3)
    monkeypatch.setattr(heads, "seeds_for", lambda size: [0, 1])
    return frame, rows, targets


def test_the_choice_follows_validation_to_the_informative_group(monkeypatch):
    frame, rows, targets = _synthetic_cell(monkeypatch, "state")
    table = pd.DataFrame(heads.fit_cell("chgnet", "mbj_bandgap", frame, rows, targets))
    assert set(table["head"]) == {"ridge", "hgb", "mlp"}
    assert (
        table[table["head"] == "mlp"]
        .groupby(["feature_set", "params"])["seed"]
        .nunique()
        .eq(2)
        .all()
    )
    chosen = choices(table)
    ridge = chosen[(chosen["model"] == "chgnet") & (chosen["head"] == "ridge")].iloc[0]
    # the signal is in the physics group: latent alone cannot be chosen
    assert ridge["feature_set"] != "latent" and ridge["test_mae"] < 0.2
    best = chosen[chosen["model"] == "best"].iloc[0]
    cell = chosen[(chosen["model"] == "chgnet") & (chosen["head"] != "best")]
    assert best["val_mae"] == pytest.approx(cell["val_mae"].min())
    assert best["leak"] == "unseen"


def test_report_reads_baselines_and_checks_targets(tmp_path, monkeypatch):
    frame, rows, targets = _synthetic_cell(monkeypatch, "site_stats")
    table = pd.DataFrame(heads.fit_cell("chgnet", "mbj_bandgap", frame, rows, targets))
    table.to_csv(tmp_path / "potentials.csv", index=False)
    pd.DataFrame(
        [
            {"model": "chgnet", "property": "mbj_bandgap", "estimate": "x", "part": "test",
             "n": 1, "n_failed": 0, "mae": 1.0, "pearson_r": 0.5}
        ]
    ).iloc[:0].to_csv(tmp_path / "potentials_zero_shot.csv", index=False)  # fmt: skip
    (tmp_path / "potentials_cost.json").write_text(
        json.dumps({"chgnet/mbj_bandgap": {"state": 0.05}})
    )
    pd.DataFrame(
        [
            {"property": "mbj_bandgap", "n_train": 100, "option": o, "chosen": o,
             "val_mae_mean": 1.0, "mae_mean": v}
            for o, v in [("vanilla", 1.0), ("uae", 0.9), ("finetune", 0.7), ("megnet16", 1.0)]
        ]
    ).to_csv(tmp_path / "label_vectors.csv", index=False)  # fmt: skip
    pd.DataFrame(
        [{"experiment": "curve_matminer", "embedding": "magpie", "property": "mbj_bandgap",
          "n_train": 100, "test_mae": 0.95}]
    ).to_csv(tmp_path / "results.csv", index=False)  # fmt: skip
    text = write_report(tmp_path)
    assert "Magpie + boosting | 0.95 (0.95×)" in text
    assert "| mbj_bandgap | 100 |" in text and "≤ 0.85 | yes |" in text
    assert "n = 100: at or below Magpie on 1 of 1" in text
    assert (tmp_path / "potentials_choices.csv").exists()


def test_graph_network_options_compete_on_validation_only():
    from training.benchmark.potential_report import with_gnn_options

    base = {"model": "best", "property": "p", "val_mae": 1.0, "test_mae": 1.1, "train_mae": 0.5}
    base.update(n_seeds=5, fit_seconds=1.0, chosen_model="chgnet", chosen_head="ridge")
    chosen = pd.DataFrame(
        [{**base, "n_train": 100, "feature_set": "latent"}, {**base, "n_train": 300}]
    )
    gnn = pd.DataFrame(
        [
            # better on validation: chosen
            {"property": "p", "n_train": 100, "option": "chgnet_sites", "chosen": "a",
             "val_mae": 0.9, "test_mae": 0.95, "n_seeds": 5, "fit_seconds_median": 30.0},
            # better on test only: not chosen
            {"property": "p", "n_train": 300, "option": "chgnet_sites", "chosen": "b",
             "val_mae": 1.2, "test_mae": 0.5, "n_seeds": 5, "fit_seconds_median": 30.0},
        ]
    )  # fmt: skip
    out = with_gnn_options(chosen, gnn).set_index("n_train")
    assert out.loc[100, "test_mae"] == 0.95 and out.loc[100, "chosen_model"] == "CGCNN"
    assert (out.loc[100, "chosen_head"], out.loc[100, "feature_set"]) == ("chgnet_sites", "a")
    assert out.loc[300, "test_mae"] == 1.1 and out.loc[300, "chosen_model"] == "chgnet"
