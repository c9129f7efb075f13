"""The report of the label-trained vectors and encoder (training.benchmark.label_vectors)."""

from __future__ import annotations

import pandas as pd
import pytest

from training.benchmark.label_vectors import (
    label_groups,
    label_markdown,
    label_table,
    matminer_comparison,
    ranked_candidates,
    target_checks,
)
from training.benchmark.results import row_fit_id

PROPS = {  # property -> (vanilla test MAE, uae factor, finetune factor)
    "formation_energy_peratom": (0.5, 0.8, 0.7),
    "mbj_bandgap": (1.0, 0.9, 1.0),
    "formation_energy_per_atom": (0.4, 0.8, 0.9),
    "bulk_modulus_kv": (20.0, 0.95, 0.85),
    "shear_modulus_gv": (15.0, 1.0, 0.95),
}


def _run(tmp_path):
    run = tmp_path / "run"
    (run / "histories").mkdir(parents=True)
    rows = []
    for prop, (base, uae, ft) in PROPS.items():
        for label, factor in (("cgcnn", 1.0), ("megnet16", 0.9), ("uae_a", uae), ("uae_b", 1.1),
                              ("ft", ft)):  # fmt: skip
            for seed in range(3):
                mae = base * factor * (1 + 0.01 * seed)
                row = {
                    "experiment": "curve", "property": prop, "unit": "u", "embedding": label,
                    "seed": seed, "train_fraction": 0.01, "n_train": 100, "test_mae": mae,
                    "best_epoch": 2, "epochs_run": 4, "fit_seconds": 1.0, "model": "cgcnn",
                }  # fmt: skip
                rows.append(row)
                val = mae * (2.0 if label == "uae_b" else 1.0)
                pd.DataFrame({"epoch": [1, 2], "val_mae": [9.0, val]}).to_csv(
                    run / "histories" / f"{row_fit_id(row)}.csv", index=False
                )
        for label, mae in (("magpie", base), ("uae_a", base * 0.9)):
            rows.append(
                {"experiment": "curve_matminer", "property": prop, "unit": "u",
                 "embedding": label, "seed": 0, "train_fraction": 0.01, "n_train": 100,
                 "test_mae": mae, "model": "hgb_composition"}
            )  # fmt: skip
    return run, pd.DataFrame(rows)


def test_the_report_marks_seen_cells_and_checks_every_target(tmp_path):
    run, frame = _run(tmp_path)
    groups = label_groups(
        {"vanilla": "cgcnn", "megnet16": "megnet16", "uae": ["uae_a", "uae_b"], "finetune": "ft"}
    )
    table = label_table(frame, run, groups)
    uae = table[table["option"] == "uae"]
    assert set(uae["chosen"]) == {"uae_a"}  # chosen on validation
    assert dict(zip(table["property"], table["seen"]))["bulk_modulus_kv"] == "unseen"
    checks = {c["target"]: c for c in target_checks(table, frame, groups)}
    fe = checks["seen formation_energy_peratom, n = 100: uae ≤ 0.85 x vanilla"]
    assert fe["measured"] == pytest.approx(0.8) and fe["met"]
    assert not checks["seen mbj_bandgap, n = 100: uae ≤ 0.85 x vanilla"]["met"]
    bulk = checks["unseen bulk_modulus_kv, n = 100: best label option ≤ 0.90 x vanilla"]
    assert bulk["met"] and bulk["detail"].startswith("finetune")
    assert not checks["unseen shear_modulus_gv, n = 100: best label option ≤ 0.90 x vanilla"]["met"]
    gmean = next(c for t, c in checks.items() if t.startswith("all 5 properties"))
    assert gmean["measured"] == pytest.approx((0.8 * 0.9 * 0.8 * 0.95 * 1.0) ** 0.2)
    matminer = matminer_comparison(frame, "uae_a")
    assert list(matminer["ratio"]) == pytest.approx([0.9] * 5)
    text = "\n".join(label_markdown(table, list(checks.values()), matminer, "uae_a"))
    assert "## bulk_modulus_kv (u), unseen" in text
    assert "at or below Magpie on 5 of 5" in text


def test_the_report_ranks_the_vector_candidates_on_validation(tmp_path):
    run, frame = _run(tmp_path)
    # a listed candidate without rows (not trained yet) is left out, not an error
    ranking = ranked_candidates(frame, run, ["uae_b", "uae_a", "uae_untrained"], [100])
    assert list(ranking["candidate"]) == ["uae_a", "uae_b"]
    assert list(ranking["chosen"]) == [True, False]
    # uae_a's validation MAE is 0.8-1.0 x cgcnn's; uae_b's is 2.2 x
    assert ranking["mean_val_ratio"].iloc[1] == pytest.approx(2.2)
    assert ranked_candidates(frame, run, ["uae_untrained"], [100]).empty
    text = "\n".join(label_markdown(pd.DataFrame(), [], pd.DataFrame(), "uae_a", ranking))
    assert "## Vector candidates, ranked on validation" in text
    assert "| uae_a | 15 | 0.886 | 0.886 | yes |" in text  # 5 properties x 3 seeds
