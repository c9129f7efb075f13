"""The experiment harness on its smoke config (built-in synthetic data, no shared data needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from training import benchmark
from training.benchmark import BenchConfig, make_split, summarize

SMOKE = Path(benchmark.REPO_ROOT) / "training" / "configs" / "bench_smoke.yaml"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    assert benchmark.main(["--config", str(SMOKE), "--out-dir", str(out)]) == 0
    return out / "bench_smoke"


@pytest.mark.slow
def test_smoke_rows_and_finite_scores(smoke_run):
    frame = pd.read_csv(smoke_run / "results.csv")
    assert list(frame.columns) == list(benchmark.COLUMNS)
    keys = set(zip(frame["experiment"], frame["embedding"], frame["train_fraction"]))
    expected = {
        ("comparison", "cgcnn", 1.0),
        ("comparison", "random_16", 1.0),
        ("dimension", "random_8", 1.0),
        ("dimension", "random_16", 1.0),
        ("scarce", "cgcnn", 0.5),
        ("scarce", "random_16", 0.5),
        ("matminer_composition", "cgcnn", 1.0),
        ("matminer_composition", "random_16", 1.0),
        ("matminer_structure", "cgcnn", 1.0),
        ("matminer_structure", "random_16", 1.0),
    }
    assert keys == expected
    assert len(frame) == len(expected)  # one seed in the smoke config, no duplicates
    assert np.isfinite(frame[["test_mae", "test_rmse", "fit_seconds"]].to_numpy()).all()
    assert (frame["test_mae"] > 0).all()
    assert set(frame["property"]) == {"volume_per_atom"}
    # the same test rows for every embedding, and the scarce runs use half the training rows
    assert frame["n_test"].nunique() == 1
    full = frame.loc[frame["train_fraction"] == 1.0, "n_train"].iloc[0]
    half = frame.loc[frame["train_fraction"] == 0.5, "n_train"]
    assert (half == round(0.5 * full)).all()
    # the identical fit (random_16, seed 0) is copied into the dimension table, not refitted
    reused = frame[frame["experiment"] == "dimension"].set_index("embedding")
    assert reused.loc["random_16", "reused_from"].startswith("comparison__")
    source = frame[(frame["experiment"] == "comparison") & (frame["embedding"] == "random_16")]
    assert reused.loc["random_16", "test_mae"] == source["test_mae"].iloc[0]


def test_smoke_report_split_and_skips(smoke_run):
    text = (smoke_run / "results.md").read_text()
    assert "| cgcnn | 92 |" in text and "(ref.)" in text
    assert "Experiment 6" in text  # the probe table
    # the missing SSL vector file is skipped with a note, not an error
    notes = json.loads((smoke_run / "notes.json").read_text())
    assert any("ssl" in k for k in notes)
    split = json.loads((smoke_run / "splits" / "volume_per_atom.json").read_text())
    parts = [split["train"], split["val"], split["test"]]
    assert sum(map(len, parts)) == 84 and len(set().union(*map(set, parts))) == 84
    assert split["seed"] == 123
    info = json.loads((smoke_run / "run_info.json").read_text())
    assert {"commit", "dirty"} <= set(info[-1]["git"])
    assert (smoke_run / "config.yaml").read_bytes() == SMOKE.read_bytes()
    figures = {p.name for p in (smoke_run / "figures").iterdir()}
    assert {"map_cgcnn.png", "similarity_cgcnn.png"} <= figures
    assert any(name.startswith("parity_comparison") for name in figures)
    assert any(name.startswith("learning_comparison") for name in figures)


def test_resume_skips_finished_rows(smoke_run):
    before = pd.read_csv(smoke_run / "results.csv")
    out = smoke_run.parent
    args = ["--config", str(SMOKE), "--out-dir", str(out), "--resume"]
    assert benchmark.main([*args, "--experiments", "comparison,matminer"]) == 0
    after = pd.read_csv(smoke_run / "results.csv")
    pd.testing.assert_frame_equal(before, after)


def test_split_is_deterministic_and_disjoint():
    ids = list(range(1000, 0, -1))
    a = make_split(ids, 123, (0.8, 0.1, 0.1))
    b = make_split(list(reversed(ids)), 123, (0.8, 0.1, 0.1))
    assert a == b
    assert [len(a[k]) for k in ("train", "val", "test")] == [800, 100, 100]
    assert not set(a["train"]) & set(a["test"])
    assert make_split(ids, 124, (0.8, 0.1, 0.1))["test"] != a["test"]


def test_summary_relative_change_and_baseline():
    rows = []
    for emb, maes in (("cgcnn", [1.0, 1.2]), ("crysatom_200", [0.8, 0.8])):
        for seed, mae in enumerate(maes):
            rows.append(
                {
                    "experiment": "comparison",
                    "model": "cgcnn",
                    "property": "p",
                    "unit": "eV",
                    "embedding": emb,
                    "dim": 1,
                    "train_fraction": 1.0,
                    "seed": seed,
                    "test_mae": mae,
                    "test_rmse": mae,
                    "test_r2": 0.5,
                    "n_train": 10,
                    "n_val": 2,
                    "n_test": 3,
                    "epochs_run": 1,
                    "fit_seconds": 1.0,
                }
            )
    summary = summarize(pd.DataFrame(rows)).set_index("embedding")
    assert summary.loc["cgcnn", "mae_mean"] == pytest.approx(1.1)
    assert summary.loc["crysatom_200", "rel_vs_cgcnn_pct"] == pytest.approx(100 * (0.8 - 1.1) / 1.1)
    assert summary.loc["crysatom_200", "n_seeds"] == 2


def test_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown benchmark config keys"):
        BenchConfig.from_dict({"name": "x", "properties": [], "epochs": 3})
    with pytest.raises(ValueError, match="not CGCNNRegressor parameters"):
        BenchConfig.from_dict(
            {
                "name": "x",
                "properties": [{"name": "a", "dataset": "synthetic", "unit": "eV"}],
                "cgcnn": {"epoch": 3},
            }
        )


def test_embeddings_filter_and_stale_rows_after_new_vectors(tmp_path):
    """--embeddings runs only the named labels; a row made from an older vector file of the same
    label is dropped and refitted on --resume, the others are kept."""
    import yaml

    from crysatom_featurizers.embeddings.builtin import random_embedding

    vectors = tmp_path / "myvec.json"
    random_embedding(dim=8, seed=1).to_json(vectors)
    cfg = yaml.safe_load(SMOKE.read_text())
    cfg.update(name="filter", experiments=["comparison"], embeddings=["cgcnn", str(vectors)])
    path = tmp_path / "filter.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    base = ["--config", str(path), "--out-dir", str(tmp_path)]
    results = tmp_path / "filter" / "results.csv"

    with pytest.raises(ValueError, match="need --resume"):
        benchmark.main([*base, "--embeddings", "cgcnn"])
    assert benchmark.main([*base, "--resume", "--embeddings", "myvec"]) == 0
    first = pd.read_csv(results)
    assert list(first["embedding"]) == ["myvec"]

    assert benchmark.main([*base, "--resume"]) == 0  # adds cgcnn, keeps myvec
    second = pd.read_csv(results).set_index("embedding")
    assert sorted(second.index) == ["cgcnn", "myvec"]
    assert second.loc["myvec", "finished_at"] == first.loc[0, "finished_at"]

    random_embedding(dim=8, seed=2).to_json(vectors)  # new vectors, same label
    assert benchmark.main([*base, "--resume"]) == 0
    third = pd.read_csv(results).set_index("embedding")
    assert sorted(third.index) == ["cgcnn", "myvec"]
    assert third.loc["cgcnn", "finished_at"] == second.loc["cgcnn", "finished_at"]
    assert third.loc["myvec", "embedding_checksum"] != second.loc["myvec", "embedding_checksum"]


CURVE_SMOKE = Path(benchmark.REPO_ROOT) / "training" / "configs" / "bench_curve_smoke.yaml"


@pytest.fixture(scope="module")
def curve_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("curve")
    assert benchmark.main(["--config", str(CURVE_SMOKE), "--out-dir", str(out)]) == 0
    return out / "bench_curve_smoke"


def test_curve_rows_nested_and_converged(curve_run):
    frame = pd.read_csv(curve_run / "results.csv")
    cgcnn = frame[frame["experiment"] == "curve"]
    # sizes 16 (two seeds) and 32 (one seed) for each of the three embeddings
    cells = cgcnn.groupby(["embedding", "n_train"])["seed"].apply(sorted).to_dict()
    labels = (
        "cgcnn",
        "random_16",
        "crysatom_50",
        "finetune",
        "distill_d0.5",
        "distill_d1",
        "alignn",
    )
    for label in labels:
        assert cells[(label, 16)] == [0, 1]
        assert cells[(label, 32)] == [0]
    assert (cgcnn["n_val"] == 8).all() and cgcnn["n_test"].nunique() == 1
    # early stopping: the best epoch is kept, no fit runs past the cap
    assert (cgcnn["best_epoch"] <= cgcnn["epochs_run"]).all()
    assert (cgcnn["epochs_run"] <= 6).all()
    assert set(cgcnn.loc[cgcnn["embedding"] == "alignn", "model"]) == {"alignn"}
    assert set(cgcnn.loc[cgcnn["embedding"] != "alignn", "model"]) == {"cgcnn"}
    hgb = frame[frame["experiment"] == "curve_matminer"]
    assert sorted(set(zip(hgb["embedding"], hgb["n_train"]))) == [
        ("cgcnn", 16),
        ("cgcnn", 32),
        ("crysatom_50", 16),
        ("crysatom_50", 32),
    ]
    assert not any((curve_run / "claims").iterdir())  # every claim released


def test_curve_budgets_are_nested_prefixes(tmp_path):
    cfg = BenchConfig.from_yaml(CURVE_SMOKE)
    bench = benchmark.Benchmark(cfg, tmp_path)
    data = bench.property_data(cfg.properties[0])
    small, large = data.budget(None, size=16), data.budget(None, size=32)
    assert large[:16] == small
    with pytest.raises(ValueError, match="exceeds"):
        data.budget(None, size=10_000)


def test_curve_report_and_figure(curve_run):
    text = (curve_run / "results.md").read_text()
    assert "## Learning curves" in text and "| n = 16 | n = 32 |" in text
    assert "`crysatom_50` against the references" in text
    assert "fits that reached the 6-epoch cap" in text
    verdicts = pd.read_csv(curve_run / "verdicts.csv")
    row = verdicts[(verdicts["n_train"] == 16) & (verdicts["reference"] == "cgcnn")].iloc[0]
    assert row["n_pairs"] == 2 and row["verdict"] in {"win", "tie", "loss"}
    assert (curve_run / "figures" / "curve_volume_per_atom.png").stat().st_size > 1000


def test_curve_resume_skips_done_fits(curve_run):
    before = pd.read_csv(curve_run / "results.csv")
    args = ["--config", str(CURVE_SMOKE), "--out-dir", str(curve_run.parent), "--resume"]
    assert benchmark.main([*args, "--experiments", "curve"]) == 0
    after = pd.read_csv(curve_run / "results.csv")
    assert len(after) == len(before)


def test_sizes_filter_runs_only_the_named_training_sizes(tmp_path):
    """--sizes narrows both learning curves (CGCNN and matminer) to the named sizes."""
    base = ["--config", str(CURVE_SMOKE), "--out-dir", str(tmp_path)]
    with pytest.raises(ValueError, match="need --resume"):
        benchmark.main([*base, "--sizes", "32"])
    with pytest.raises(ValueError, match=r"unknown sizes \[64\]"):
        benchmark.main([*base, "--resume", "--sizes", "64"])
    with pytest.raises(SystemExit):
        benchmark.main([*base, "--resume", "--sizes", "a lot"])
    args = [*base, "--resume", "--sizes", "32", "--embeddings", "cgcnn"]
    assert benchmark.main([*args, "--experiments", "curve,matminer"]) == 0
    frame = pd.read_csv(tmp_path / "bench_curve_smoke" / "results.csv")
    assert sorted(frame["experiment"].unique()) == ["curve", "curve_matminer"]
    assert set(frame["n_train"]) == {32} and set(frame["embedding"]) == {"cgcnn"}


def test_seeds_filter_runs_only_the_named_seeds(tmp_path):
    """--seeds narrows the CGCNN and matminer fits to the named seeds (at n = 16 the CGCNN
    curve has seeds 0 and 1, the matminer curve seed 0 only)."""
    base = ["--config", str(CURVE_SMOKE), "--out-dir", str(tmp_path)]
    with pytest.raises(ValueError, match="need --resume"):
        benchmark.main([*base, "--seeds", "1"])
    with pytest.raises(SystemExit):
        benchmark.main([*base, "--resume", "--seeds", "one"])
    args = [*base, "--resume", "--sizes", "16", "--embeddings", "cgcnn", "--seeds", "1"]
    assert benchmark.main([*args, "--experiments", "curve,matminer"]) == 0
    frame = pd.read_csv(tmp_path / "bench_curve_smoke" / "results.csv")
    assert set(frame["experiment"]) == {"curve"}  # no matminer fit has seed 1
    assert set(frame["seed"]) == {1} and set(frame["n_train"]) == {16}


def test_curve_styles_are_distinct_past_the_palette():
    from training.benchmark.curve import FIXED_COLOURS, TARGET, curve_styles

    labels = ["cgcnn", TARGET, "random", *[f"emb{i}" for i in range(9)], "skipatom"]
    style = curve_styles(labels)
    assert set(style) == set(labels)
    assert len(set(style.values())) == len(labels)  # no two lines look alike
    assert style["cgcnn"][0] == FIXED_COLOURS["cgcnn"] and style[TARGET][0] == "black"
    # another target keeps black; a label's style does not depend on the labels after it
    other = curve_styles(["x", TARGET, "cgcnn"], target="x")
    assert other["x"][0] == "black" and other[TARGET][0] != "black"
    assert curve_styles(labels[:5])["emb0"] == style["emb0"]


def test_paired_verdict_rules():
    from training.benchmark.curve import paired_verdict

    rows = []
    for seed, (a, b) in enumerate([(1.0, 1.2), (1.1, 1.3), (0.9, 1.12)]):
        for label, mae in (("crysatom_200", a), ("cgcnn", b)):
            rows.append(
                {
                    "experiment": "curve",
                    "property": "p",
                    "n_train": 100,
                    "seed": seed,
                    "embedding": label,
                    "test_mae": mae,
                }
            )
    frame = pd.DataFrame(rows)
    win = paired_verdict(frame, "p", 100, "crysatom_200", "cgcnn")
    assert win["verdict"] == "win" and win["n_pairs"] == 3 and win["rel_diff_pct"] < 0
    frame.loc[(frame["seed"] == 2) & (frame["embedding"] == "crysatom_200"), "test_mae"] = 1.5
    assert paired_verdict(frame, "p", 100, "crysatom_200", "cgcnn")["verdict"] == "tie"
    one = frame[frame["seed"] == 0]
    assert paired_verdict(one, "p", 100, "crysatom_200", "cgcnn")["verdict"] == "n/a"


def test_curve_config_errors():
    base = BenchConfig.from_yaml(CURVE_SMOKE)
    data = {k: getattr(base, k) for k in ("name", "properties", "curve")}
    data["properties"] = [vars(p) for p in base.properties]
    with pytest.raises(ValueError, match="unknown curve keys"):
        BenchConfig.from_dict({**data, "curve": {"size": [10]}})
    with pytest.raises(ValueError, match="integers >= 2"):
        BenchConfig.from_dict({**data, "curve": {"sizes": [1, 10]}})


def test_curve_candidates_chosen_on_validation(curve_run):
    table = pd.read_csv(curve_run / "candidates.csv")
    assert list(table["candidate"]) == sorted(
        table["candidate"], key=dict(zip(table["candidate"], table["mean_val_ratio"])).get
    )
    assert table["chosen"].tolist() == [True, False]
    assert (table["n_cells"] == 2).all()  # n = 16, seeds 0 and 1
    assert (
        "Choice of the shipped `crysatom` vectors (validation only)"
        in (curve_run / "results.md").read_text()
    )


def test_curve_tables_survive_duplicate_rows_and_empty_units():
    from training.benchmark.curve import curve_summary, paired_verdict

    rows = []
    for seed, (a, b) in enumerate([(1.0, 1.2), (1.1, 1.3), (0.9, 1.12)]):
        for label, mae in (("crysatom_200", a), ("cgcnn", b)):
            rows.append(
                {
                    "experiment": "curve",
                    "model": "cgcnn",
                    "property": "p",
                    "unit": np.nan,
                    "n_train": 100,
                    "seed": seed,
                    "embedding": label,
                    "test_mae": mae,
                    "epochs_run": 50,
                    "best_epoch": 10,
                    "fit_seconds": 1.0,
                }
            )
    frame = pd.DataFrame(rows + rows[:1])  # one fit written twice
    assert paired_verdict(frame, "p", 100, "crysatom_200", "cgcnn")["n_pairs"] == 3
    summary = curve_summary(frame)
    assert len(summary) == 2 and set(summary["n_seeds"]) == {3}


def test_claims_are_exclusive_between_processes(tmp_path):
    import subprocess
    import sys
    import time

    cfg = BenchConfig.from_yaml(CURVE_SMOKE)
    bench = benchmark.Benchmark(cfg, tmp_path)
    (tmp_path / "claims").mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
            "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
            str(tmp_path / "claims" / "fit_a"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not bench.claim("fit_a")  # a live process holds it
        assert bench.others_running()
        with pytest.raises(ValueError, match="another process is running"):
            benchmark.main(
                [
                    "--config",
                    str(CURVE_SMOKE),
                    "--out-dir",
                    str(tmp_path.parent),
                    "--name",
                    tmp_path.name,
                    "--experiments",
                    "curve",
                ]
            )
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    assert bench.claim("fit_a")  # the kernel freed the dead process's lock
    assert bench.claim("fit_b")
    bench.release("fit_a")
    bench.release("fit_b")
    assert not bench.others_running()
    assert not any((tmp_path / "claims").iterdir())


def test_curve_size_beyond_the_training_set_is_noted(curve_run):
    notes = json.loads((curve_run / "notes.json").read_text())
    assert any("n=100000" in k and "skipped: only" in v for k, v in notes.items())


def test_curve_transfer_variants_and_report(curve_run):
    frame = pd.read_csv(curve_run / "results.csv")
    fits = (
        frame[frame["experiment"] == "curve"]
        .set_index(["embedding", "n_train", "seed"])
        .sort_index()
    )
    # delta = 1 switches the distillation term off: the same model as plain cgcnn
    plain, kd_off = fits.loc["cgcnn", "test_mae"], fits.loc["distill_d1", "test_mae"]
    np.testing.assert_allclose(kd_off.sort_index(), plain.sort_index(), rtol=1e-6)
    assert not np.allclose(fits.loc["distill_d0.5", "test_mae"].sort_index(), plain.sort_index())
    table = pd.read_csv(curve_run / "transfer.csv")
    assert set(table["option"]) == {"vanilla", "vectors", "finetune", "distill"}
    distill = table[table["option"] == "distill"]
    assert set(distill["chosen"]) <= {"distill_d0.5", "distill_d1"}
    assert (distill["settings_tried"] == 2).all()
    text = (curve_run / "results.md").read_text()
    assert "## Transfer from the pretrained encoder" in text
    assert "| finetune |" in text.split("## Transfer")[1]
    # the embedding curves and verdicts leave the transfer variants out
    assert "| cgcnn | finetune |" not in text.split("## Transfer")[0]
    verdicts = pd.read_csv(curve_run / "verdicts.csv")
    assert not verdicts["reference"].isin(["finetune", "distill_d1"]).any()
    assert (curve_run / "figures" / "transfer.png").stat().st_size > 1000


def test_alignn_report(curve_run):
    from training.benchmark import alignn

    assert alignn.main(["--run", str(curve_run), "--config", str(CURVE_SMOKE)]) == 0
    text = (curve_run / "alignn.md").read_text()
    assert "## The CPU preset, chosen on validation at n = 16" in text
    assert "Chosen: `alignn`" in text and "| formation_energy_peratom | not run |" in text
    table = pd.read_csv(curve_run / "alignn.csv")
    assert set(table["option"]) == {"vanilla", "alignn"}
    assert (curve_run / "figures" / "alignn.png").stat().st_size > 1000
    fit_rows = text.split("## Fit at the kept epoch")[1].splitlines()
    assert sum(row.startswith("| volume_per_atom | 16 |") for row in fit_rows) == 2


def test_alignn_fit_table_reads_the_kept_epoch_on_shared_seeds(tmp_path):
    from training.benchmark.alignn import fit_table

    rows, histories = [], tmp_path / "histories"
    histories.mkdir()
    fits = {"a": [0, 1], "b": [0]}  # seed 1 has no "b" fit, so it is left out
    for label, seeds in fits.items():
        for seed in seeds:
            rows.append({
                "experiment": "curve", "property": "p", "unit": "eV", "embedding": label,
                "seed": seed, "n_train": 100, "train_fraction": 0.1, "best_epoch": 2,
                "epochs_run": 4, "fit_seconds": 8.0, "test_mae": 0.5,
            })  # fmt: skip
            history = {"epoch": [1, 2, 3], "train_mae": [3.0, 1.0 + seed, 0.5],
                       "val_mae": [4.0, 2.0, 2.5]}  # fmt: skip
            pd.DataFrame(history).to_csv(histories / f"curve__p__{label}__s{seed}__n100.csv")
    table = fit_table(pd.DataFrame(rows), tmp_path, {"A": "a", "B": "b"}).set_index("option")
    assert table.loc["A", "seeds"] == 1 and table.loc["A", "train_mae"] == 1.0
    assert table.loc["A", "val_over_train"] == 2.0 and table.loc["A", "s_per_epoch"] == 2.0
    assert fit_table(pd.DataFrame(rows), tmp_path, {"A": "a", "C": "c"}).empty


def test_alignn_report_keeps_only_the_properties_alignn_was_fitted_on():
    from training.benchmark.alignn import alignn_properties

    table = pd.DataFrame(
        {"property": ["p", "p", "q", "q"], "option": ["vanilla", "alignn", "vanilla", "vectors"]}
    )
    assert list(alignn_properties(table)["property"]) == ["p", "p"]
    assert alignn_properties(table[table["property"] == "q"]).empty


def test_transfer_table_scores_every_option_on_the_shared_seeds(tmp_path):
    from training.benchmark.transfer import transfer_table

    rows = []
    maes = {
        "cgcnn": [1.0, 1.2, 1.1, 0.5, 0.5],
        "vectors": [0.9, 1.15, 1.0, 0.4, 0.4],
        "d1": [0.9, 1.1, 1.0],
        "d2": [0.95, 1.1],  # the distillation settings share seeds 0 and 1 only
    }
    for label, values in maes.items():
        for seed, mae in enumerate(values):
            rows.append(
                {
                    "experiment": "curve",
                    "property": "p",
                    "unit": "eV",
                    "embedding": label,
                    "seed": seed,
                    "train_fraction": 1.0,
                    "n_train": 100,
                    "test_mae": mae,
                    "best_epoch": np.nan,
                    "epochs_run": 50,
                    "fit_seconds": 1.0,
                }
            )
    groups = {"vanilla": ["cgcnn"], "vectors": ["vectors"], "distill": ["d1", "d2"]}
    table = transfer_table(pd.DataFrame(rows), tmp_path, groups).set_index("option")
    # every option keeps seeds 0 and 1, the seeds distillation's settings all have
    assert (table["n_seeds"] == 2).all()
    assert table.loc["vanilla", "mae_mean"] == pytest.approx(1.1)
    assert table.loc["vectors", "rel_vs_vanilla_pct"] == pytest.approx(100 * (1.025 / 1.1 - 1))
    # the verdict pairs the same two seeds (over five, vectors would be a significant win)
    p_two = stats.ttest_rel([0.9, 1.15], [1.0, 1.2]).pvalue
    assert table.loc["vectors", "p_value"] == pytest.approx(p_two)
    assert table.loc["vectors", "verdict"] == "tie"


def test_curve_variant_config_errors():
    base = BenchConfig.from_yaml(CURVE_SMOKE)
    data = {k: getattr(base, k) for k in ("name", "properties")}
    data["properties"] = [vars(p) for p in base.properties]
    with pytest.raises(ValueError, match="must give at least an embedding"):
        BenchConfig.from_dict({**data, "curve": {"variants": {"ft": {"finetune": "crysatom"}}}})
    with pytest.raises(ValueError, match=r"\['n_conv'\] are not ALIGNNRegressor"):
        BenchConfig.from_dict(
            {**data, "curve": {"variants": {"a": {"embedding": "cgcnn", "model": "alignn",
                                                  "n_conv": 2}}}}
        )  # fmt: skip
    with pytest.raises(ValueError, match="model must be one of"):
        BenchConfig.from_dict(
            {**data, "curve": {"variants": {"a": {"embedding": "cgcnn", "model": "schnet"}}}}
        )
    with pytest.raises(ValueError, match=r"\['fine_tune'\] are not CGCNNRegressor"):
        BenchConfig.from_dict(
            {**data, "curve": {"variants": {"ft": {"embedding": "cgcnn", "fine_tune": "x"}}}}
        )


def test_checkpointed_fit_resumes_after_an_interruption(tmp_path, monkeypatch):
    """With checkpoint_fits, a fit cut off after two epochs resumes from its checkpoint on
    --resume and ends as the uninterrupted fit does; the checkpoint goes once the row is in."""
    import yaml

    from crysatom_featurizers.nn import train

    cfg = yaml.safe_load(SMOKE.read_text())
    cfg["cgcnn"].update(epochs=4)
    cfg.update(experiments=["comparison"], embeddings=["cgcnn"], checkpoint_fits=True)
    for name in ("whole", "cut"):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({**cfg, "name": name}))

    def run(name: str) -> pd.DataFrame:
        argv = ["--config", str(tmp_path / f"{name}.yaml"), "--out-dir", str(tmp_path)]
        assert benchmark.main([*argv, "--resume"]) == 0
        path = tmp_path / name / "results.csv"
        return pd.read_csv(path) if path.exists() else pd.DataFrame()

    whole = run("whole")
    assert len(whole) == 1 and whole.loc[0, "epochs_run"] == 4

    real_epoch, calls = train._train_epoch, {"n": 0}

    def cut_after_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("interrupted")
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train, "_train_epoch", cut_after_two)
    assert run("cut").empty  # the fit failed (noted); its checkpoint holds two epochs
    saved = list((tmp_path / "cut" / "checkpoints").iterdir())
    assert len(saved) == 1
    calls["n"] = -100  # counts the epochs the resumed fit runs
    resumed = run("cut")
    assert calls["n"] == -100 + 2  # epochs 3 and 4 only
    assert len(resumed) == 1 and resumed.loc[0, "epochs_run"] == 4
    assert resumed.loc[0, "test_mae"] == whole.loc[0, "test_mae"]
    assert not saved[0].exists()
    # the run's per-epoch histories are packed into one table at its end
    assert not list((tmp_path / "cut" / "histories").glob("*.csv"))
    history = pd.read_csv(tmp_path / "cut" / "histories.csv.xz")
    assert list(history["epoch"]) == [1, 2, 3, 4] and history["fit"].nunique() == 1


def test_checkpoint_fits_must_be_a_boolean():
    cfg = yaml_smoke()
    cfg["checkpoint_fits"] = "yes"
    with pytest.raises(ValueError, match="checkpoint_fits must be true or false"):
        BenchConfig.from_dict(cfg)


def yaml_smoke() -> dict:
    import yaml

    return yaml.safe_load(SMOKE.read_text())


def test_full_data_report_batch_choice_table_and_figure(tmp_path):
    """The full-data protocol on the smoke data: batch-size candidates on the curve, checkpointed
    full-data fits, and the report that chooses the batch on validation and plots the curve."""
    import yaml

    from training.benchmark import full_data

    cfg = yaml_smoke()
    cfg["cgcnn"].update(epochs=3)
    cfg.update(
        name="full",
        experiments=["curve", "comparison"],
        embeddings=["cgcnn", "random:16"],
        checkpoint_fits=True,
        curve={
            "sizes": [24],
            "seeds": [0],
            "embeddings": ["cgcnn", "random:16"],
            "variants": {
                "cgcnn_b8": {"embedding": "cgcnn", "batch_size": 8},
                "cgcnn_b32": {"embedding": "cgcnn", "batch_size": 32},
            },
            "batch_report": {"candidates": ["cgcnn_b8", "cgcnn_b32"], "size": 24},
        },
    )
    config = tmp_path / "full.yaml"
    config.write_text(yaml.safe_dump(cfg))
    assert benchmark.main(["--config", str(config), "--out-dir", str(tmp_path)]) == 0
    run = tmp_path / "full"
    assert not any((run / "checkpoints").iterdir())  # removed once each row is in
    argv = ["--run", str(run), "--config", str(config), "--curve", str(run)]
    assert full_data.main(argv) == 0
    text = (run / "full_data.md").read_text()
    frame = pd.read_csv(run / "results.csv")
    prop = "volume_per_atom"
    _, chosen = full_data.batch_table(frame, run, ["cgcnn_b8", "cgcnn_b32"], 24, prop)
    assert chosen in {"cgcnn_b8", "cgcnn_b32"} and f"Chosen: `{chosen}`" in text
    table = pd.read_csv(run / "full_data.csv")
    assert sorted(table["embedding"]) == ["cgcnn", "random_16"]
    assert (table.loc[table["embedding"] == "cgcnn", "vs_cgcnn_pct"] == 0).all()
    full_n = frame.loc[frame["experiment"] == "comparison", "n_train"].iloc[0]
    assert (table["n_train"] == full_n).all() and full_n > 24
    assert (run / "figures" / "full_curve_volume_per_atom.png").stat().st_size > 0
    # a property of the curve without a full-data fit gets no figure
    full_data.plot_full_curves(frame, frame.iloc[0:0], run / "empty")
    assert not (run / "empty").exists()
    only_curve = frame[frame["experiment"] == "curve"].assign(property="other")
    full = frame[frame["experiment"] == "comparison"]
    paths = full_data.plot_full_curves(pd.concat([frame, only_curve]), full, run / "two")
    assert [p.name for p in paths] == ["full_curve_volume_per_atom.png"]


def test_full_data_batch_choice_rules(tmp_path):
    """The fastest candidate within the tolerance of the best validation MAE wins, over the
    seeds every candidate has; no choice while a candidate has no fit."""
    from training.benchmark import full_data

    rows, histories = [], tmp_path / "histories"
    histories.mkdir()
    fits = {  # label: (seed, validation MAE, fit seconds)
        "b64": [(0, 1.00, 900.0), (1, 1.00, 900.0)],
        "b256": [(0, 1.02, 300.0)],  # within 3 %, 3x faster
        "b1024": [(0, 1.20, 100.0)],  # fastest, too far off
    }
    for label, entries in fits.items():
        for seed, val, seconds in entries:
            row = {
                "experiment": "curve", "property": "p", "unit": "eV", "embedding": label,
                "seed": seed, "n_train": 3000, "train_fraction": 0.1, "best_epoch": 1,
                "epochs_run": 10, "fit_seconds": seconds, "test_mae": 0.5,
            }  # fmt: skip
            rows.append(row)
            stem = f"curve__p__{label}__s{seed}__n3000"
            pd.DataFrame({"epoch": [1], "val_mae": [val]}).to_csv(histories / f"{stem}.csv")
    frame = pd.DataFrame(rows)
    table, chosen = full_data.batch_table(frame, tmp_path, list(fits), 3000, "p")
    assert chosen == "b256"
    assert table.set_index("embedding").loc["b64", "fits"] == 1  # seed 1 is not shared
    assert full_data.batch_table(frame, tmp_path, [*fits, "b32"], 3000, "p")[1] is None
    assert full_data.batch_table(frame, tmp_path, list(fits), 3000, "other")[1] is None


def test_histories_pack_into_one_table_and_read_back(tmp_path):
    from training.benchmark.results import PACKED_HISTORIES, pack_histories, read_history

    loose = tmp_path / "histories"
    loose.mkdir()
    a = pd.DataFrame({"epoch": [1, 2], "val_mae": [0.5, 0.25]})
    b = pd.DataFrame({"epoch": [1], "val_mae": [1.5], "lr": [1e-3]})
    a.to_csv(loose / "fit_a.csv", index=False)
    b.to_csv(loose / "fit_b.csv", index=False)
    assert pack_histories(tmp_path) == 2 and not list(loose.glob("*.csv"))
    assert (tmp_path / PACKED_HISTORIES).exists()
    pd.testing.assert_frame_equal(read_history(tmp_path, "fit_a"), a, check_dtype=False)
    pd.testing.assert_frame_equal(read_history(tmp_path, "fit_b"), b, check_dtype=False)
    assert read_history(tmp_path, "missing") is None
    # a loose file of a fit wins over its packed rows, and replaces them at the next pack
    a2 = a.assign(val_mae=[0.4, 0.2])
    a2.to_csv(loose / "fit_a.csv", index=False)
    pd.testing.assert_frame_equal(read_history(tmp_path, "fit_a"), a2, check_dtype=False)
    assert pack_histories(tmp_path) == 1
    pd.testing.assert_frame_equal(read_history(tmp_path, "fit_a"), a2, check_dtype=False)
    pd.testing.assert_frame_equal(read_history(tmp_path, "fit_b"), b, check_dtype=False)


def test_one_entry_point_runs_experiments_or_writes_a_report(monkeypatch, capsys):
    import sys
    import types

    from training.benchmark import cli

    calls = []
    fake = types.ModuleType("fake_report")
    fake.main = lambda argv: calls.append(argv) or 0
    monkeypatch.setitem(sys.modules, "fake_report", fake)
    monkeypatch.setitem(cli.REPORTS, "fake", "fake_report")
    assert cli.main(["--report", "fake"]) == 0
    assert cli.main(["--report", "fake", "--run", "r", "--config", "c.yaml"]) == 0
    assert calls == [[], ["--run", "r", "--config", "c.yaml"]]
    with pytest.raises(SystemExit):
        cli.main([])
    assert "--config is required (or --report NAME)" in capsys.readouterr().err
