"""Tests for the element-property probe (training.probe)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from crysatom_featurizers.embeddings import ElementEmbedding, load  # noqa: E402
from training.probe import (  # noqa: E402
    COMMON_ELEMENTS,
    CRYSTALTRANSFORMER_TABLE_VI,
    TARGETS,
    probe_embedding,
    probe_table,
    summary_table,
    target_table,
    write_results,
)

FAST = {"n_repeats": 1, "n_estimators": 20}


@pytest.fixture(scope="module")
def cgcnn_probe() -> pd.DataFrame:
    return probe_embedding("cgcnn", **FAST)


def test_common_elements():
    assert len(COMMON_ELEMENTS) == len(set(COMMON_ELEMENTS)) == 86
    assert {"H", "Kr", "Xe", "Bi", "Ac", "Pu"} <= set(COMMON_ELEMENTS)
    assert not {"He", "Ne", "Ar", "Po", "Rn", "Am"} & set(COMMON_ELEMENTS)


def test_target_values_and_units():
    table = target_table(["Fe", "O", "Kr", "Pa"])
    assert list(table.columns) == list(TARGETS)
    assert table.loc["Fe", "atomic_radius"] == pytest.approx(1.40)  # Å
    assert table.loc["Fe", "melting_point"] == pytest.approx(1811.0)  # K
    assert table.loc["Fe", "boiling_point"] == pytest.approx(3134.0)  # K
    assert table.loc["Fe", "first_ionization_energy"] == pytest.approx(7.902, abs=1e-3)  # eV
    assert table.loc["O", "electronegativity"] == pytest.approx(3.44)
    # missing pymatgen data become NaN and are dropped per target
    assert math.isnan(table.loc["Kr", "atomic_radius"])
    assert math.isnan(table.loc["Pa", "boiling_point"])
    with pytest.raises(ValueError, match="unknown probe targets"):
        target_table(["Fe"], ["density"])


def test_cgcnn_probe_is_finite_per_target(cgcnn_probe):
    assert cgcnn_probe["target"].tolist() == list(TARGETS)
    for column in ["r2_ridge", "r2_random_forest", "r2_best"]:
        assert np.isfinite(cgcnn_probe[column]).all()
    # the standardised ridge is reported but does not compete for the score
    assert np.isfinite(cgcnn_probe["r2_ridge_standardized"]).all()
    best = cgcnn_probe[["r2_ridge", "r2_random_forest"]].max(axis=1)
    np.testing.assert_allclose(cgcnn_probe["r2_best"], best)
    assert set(cgcnn_probe["best_model"]) <= {"ridge", "random_forest"}
    # Kr and Xe have no radius, Pa no boiling point
    counts = dict(zip(cgcnn_probe["target"], cgcnn_probe["n_elements"]))
    assert counts["atomic_radius"] == 84 and counts["boiling_point"] == 85
    assert counts["melting_point"] == 86
    assert cgcnn_probe.attrs["dim"] == 92 and len(cgcnn_probe.attrs["elements"]) == 86
    assert cgcnn_probe.attrs["mean_r2"] > 0.5


def test_random_vectors_score_far_below_cgcnn(cgcnn_probe):
    random = probe_embedding("random:50", **FAST)  # 50 dims keep the forest fast
    assert random.attrs["embedding"] == "random_50"
    assert random.attrs["mean_r2"] < 0.15
    assert cgcnn_probe.attrs["mean_r2"] - random.attrs["mean_r2"] > 0.4


def test_vectors_holding_the_targets_score_near_one():
    symbols = [s for s in COMMON_ELEMENTS if np.isfinite(target_table([s]).to_numpy()).all()]
    values = target_table(symbols).to_numpy()
    noise = np.random.default_rng(0).normal(size=(len(symbols), 3))
    embedding = ElementEmbedding.from_dict(
        {s: np.concatenate([v, n]) for s, v, n in zip(symbols, values, noise)}, name="oracle"
    )
    result = probe_embedding(embedding, models=("ridge",), n_repeats=1)
    assert (result["r2_best"] > 0.95).all()
    assert result.attrs["embedding"] == "oracle"


def test_element_selection():
    small = ElementEmbedding.from_dict(
        {s: [float(i)] for i, s in enumerate(COMMON_ELEMENTS[:20])}, name="tiny"
    )
    result = probe_embedding(small, models=("ridge",), n_repeats=1, targets=["melting_point"])
    assert result["n_elements"].tolist() == [20]
    assert result["n_missing"].tolist() == [66]
    chosen = probe_embedding("cgcnn", elements=COMMON_ELEMENTS[:30], models=("ridge",), n_repeats=1)
    assert chosen["n_elements"].max() == 30
    covered = probe_embedding(
        "megnet16", elements="covered", models=("ridge",), n_repeats=1, targets=["melting_point"]
    )
    assert covered["n_elements"].iloc[0] > 86
    with pytest.raises(ValueError, match="covers only"):
        probe_embedding(small, elements=["H", "Li", "Be"], models=("ridge",))
    with pytest.raises(TypeError, match="ElementEmbedding"):
        probe_embedding(42)
    with pytest.raises(ValueError, match="unknown probe models"):
        probe_embedding("cgcnn", models=("lasso",))


def test_table_and_written_results(tmp_path):
    long = probe_table(
        ["megnet16", load("random", dim=8)], models=("ridge",), n_repeats=1, targets=None
    )
    assert long["embedding"].unique().tolist() == ["megnet16", "random"]
    wide = summary_table(long)
    assert list(wide.index) == [*TARGETS, "mean"]
    paper = wide["CrystalTransformer Table VI (paper)"]
    assert paper["atomic_radius"] == CRYSTALTRANSFORMER_TABLE_VI["atomic_radius"] == 0.784
    assert paper["first_ionization_energy"] == 0.907
    assert wide.loc["mean", "megnet16"] == pytest.approx(
        long.loc[long["embedding"] == "megnet16", "r2_best"].mean()
    )
    settings = {"n_splits": 5, "n_repeats": 1, "elements": "common"}
    paths = write_results(long, tmp_path, settings)
    assert all(p.exists() for p in paths)
    assert "| **mean** |" in (tmp_path / "probe.md").read_text()
    # a later run adds rows and keeps the earlier embeddings
    extra = probe_table(["cgcnn"], models=("ridge",), n_repeats=1)
    write_results(extra, tmp_path, settings)
    merged = pd.read_csv(tmp_path / "probe_long.csv")
    assert merged["embedding"].unique().tolist() == ["megnet16", "random", "cgcnn"]


def test_family_cohesion_separates_structured_from_random_vectors():
    from crysatom_featurizers.embeddings import load
    from training.families import FAMILIES, family_cohesion

    structured = family_cohesion(load("cgcnn"))
    noise = family_cohesion(load("random", dim=64))
    assert list(structured.index) == list(FAMILIES)
    # The one-hot scheme shares group/block bins within a family; random vectors share nothing.
    assert (structured["intra"] > structured["overall"]).all()
    assert structured["nn"].mean() > 0.5
    assert noise["nn"].mean() < 0.3
