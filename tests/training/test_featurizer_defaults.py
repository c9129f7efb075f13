"""Ranking the composition featurizers' candidate vectors on validation."""

from __future__ import annotations

import pandas as pd
import pytest

from training.featurizer_defaults import main, rank


def test_rank_is_the_geometric_mean_ratio_to_magpie():
    rows = []
    for prop in ("a", "b"):
        for cand, mae, cols in (
            ("magpie", 1.0, 110),
            ("crysatom", 2.0, 6000),
            ("crysatom_200", 0.5, 1000),
        ):
            rows.append(
                {
                    "property": prop,
                    "n_train": 100,
                    "candidate": cand,
                    "val_mae": mae if prop == "a" else 1.0,
                    "columns": cols,
                }
            )
    ranking = rank(pd.DataFrame(rows))
    assert list(ranking["candidate"]) == ["crysatom_200", "magpie", "crysatom"]
    assert ranking.loc[0, "val_ratio_to_reference"] == pytest.approx(0.5**0.5)
    assert ranking.loc[2, "n_cells"] == 2 and ranking.loc[2, "columns"] == 6000


def test_the_reference_must_be_a_candidate():
    with pytest.raises(SystemExit):
        main(["--candidates", "crysatom"])
