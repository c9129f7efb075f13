"""``potentials.md``: frozen universal-potential features against the curve's baselines.

Reads ``potentials.csv`` (every candidate of :mod:`training.benchmark.potential_heads`),
``potentials_zero_shot.csv``, ``potentials_cost.json``, ``label_vectors.csv`` (CGCNN on
``cgcnn``, ``megnet16`` and ``uae`` vectors, and ``uae`` fine-tuning, each chosen on validation)
and ``results.csv`` (Magpie + boosting, ``curve_matminer``; and the graph-network options of
the config's ``curve.potential_report``: CGCNN on a potential's site vectors or distilled from
it, each option's setting chosen on validation), all from the same run folder::

    python -m training.benchmark.potential_report --run training/results/bench_curve

The *best potential option* of a cell is chosen on validation among the frozen-feature heads
and these graph-network options.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from crysatom_featurizers.embeddings.builtin import LEAK_CLASSES
from crysatom_featurizers.io import atomic_write_text
from training.benchmark.config import BenchConfig
from training.benchmark.results import ResultsFile
from training.benchmark.transfer import transfer_table
from training.labels import SEEN_PROPERTIES

BASELINES = ("vanilla", "uae", "finetune", "megnet16")
PROPERTY_NAMES = {
    "formation_energy_peratom": "JARVIS formation energy",
    "mbj_bandgap": "JARVIS MBJ band gap",
    "bulk_modulus_kv": "JARVIS bulk modulus K_V",
    "shear_modulus_gv": "JARVIS shear modulus G_V",
    "formation_energy_per_atom": "MP formation energy",
}


def choices(candidates: pd.DataFrame) -> pd.DataFrame:
    """Per (model, property, size, head): the feature set and parameters with the lowest mean
    validation MAE over seeds, with its mean test MAE; then ``head="best"``: the head with the
    lowest validation MAE of the cell, and ``model="best"``: the best over the models."""
    if "train_mae" not in candidates:
        candidates = candidates.assign(train_mae=np.nan)
    keys = ["model", "property", "unit", "leak", "n_train", "head", "feature_set", "params"]
    mean = (
        candidates.groupby(keys, dropna=False)
        .agg(
            val_mae=("val_mae", "mean"),
            test_mae=("test_mae", "mean"),
            train_mae=("train_mae", "mean"),
            test_std=("test_mae", "std"),
            n_seeds=("seed", "nunique"),
            n_features=("n_features", "first"),
            fit_seconds=("fit_seconds", "mean"),
        )
        .reset_index()
    )
    cell = ["model", "property", "n_train", "head"]
    chosen = mean.loc[mean.groupby(cell)["val_mae"].idxmin()].copy()
    best = chosen.loc[chosen.groupby(["model", "property", "n_train"])["val_mae"].idxmin()].copy()
    best["chosen_head"] = best["head"]
    best["head"] = "best"
    overall = best.loc[best.groupby(["property", "n_train"])["val_mae"].idxmin()].copy()
    overall["chosen_model"] = overall["model"]
    overall["model"] = "best"
    return pd.concat([chosen, best, overall], ignore_index=True)


#: Names of the graph-network options of ``curve.potential_report`` in the tables.
GNN_NAMES = {
    "chgnet_sites": "CGCNN on CHGNet site vectors",
    "chgnet_distill": "CGCNN distilled from CHGNet",
    "sevennet_sites": "CGCNN on SevenNet site vectors",
    "sevennet_distill": "CGCNN distilled from SevenNet",
}


def gnn_options(run: Path, groups: dict[str, list[str]]) -> pd.DataFrame:
    """The graph-network options (all but ``vanilla``) per property and size: the setting
    chosen on validation, its mean validation and test MAE and its median fit time."""
    results = run / "results.csv"
    if len(groups) < 2 or not results.exists():
        return pd.DataFrame()
    table = transfer_table(ResultsFile(results).read(), run, groups)
    if table.empty:
        return table
    table = table[table["option"] != "vanilla"]
    return table.rename(columns={"val_mae_mean": "val_mae", "mae_mean": "test_mae"})


def with_gnn_options(chosen: pd.DataFrame, gnn: pd.DataFrame) -> pd.DataFrame:
    """``chosen`` whose ``model="best"`` rows also compete with the graph-network options: a
    cell takes the option with the lowest validation MAE."""
    if gnn.empty:
        return chosen
    chosen = chosen.copy()
    for index, row in chosen[chosen["model"] == "best"].iterrows():
        cell = gnn[(gnn["property"] == row["property"]) & (gnn["n_train"] == row["n_train"])]
        cell = cell[np.isfinite(cell["val_mae"])]
        if cell.empty or cell["val_mae"].min() >= row["val_mae"]:
            continue
        best = cell.loc[cell["val_mae"].idxmin()]
        chosen.loc[index, ["val_mae", "test_mae", "train_mae", "n_seeds", "fit_seconds"]] = [
            best["val_mae"],
            best["test_mae"],
            np.nan,
            best["n_seeds"],
            best.get("fit_seconds_median", np.nan),
        ]
        chosen.loc[index, ["chosen_model", "chosen_head", "feature_set"]] = [
            "CGCNN",
            str(best["option"]),
            str(best["chosen"]),
        ]
    return chosen


def baselines(run: Path) -> pd.DataFrame:
    """Test (and validation) MAE of the curve's baselines, per property and size."""
    label = pd.read_csv(run / "label_vectors.csv")
    label = label[label["option"].isin(BASELINES)]
    out = label[["property", "n_train", "option", "chosen", "val_mae_mean", "mae_mean"]].rename(
        columns={"val_mae_mean": "val_mae", "mae_mean": "test_mae"}
    )
    results = pd.read_csv(run / "results.csv")
    magpie = results[
        (results["experiment"] == "curve_matminer") & (results["embedding"] == "magpie")
    ]
    magpie = (magpie.groupby(["property", "n_train"])["test_mae"].mean().reset_index()).assign(
        option="magpie_hgb", chosen="magpie", val_mae=np.nan
    )
    return pd.concat([out, magpie], ignore_index=True)


def _fmt(value: float) -> str:
    if not np.isfinite(value):
        return "–"
    return f"{value:.3g}"


def _ratio(value: float, reference: float) -> str:
    return f"{value / reference:.2f}×" if np.isfinite(value) and reference else "–"


def write_report(run: str | Path, gnn_groups: dict[str, list[str]] | None = None) -> str:
    run = Path(run)
    candidates = pd.read_csv(run / "potentials.csv")
    gnn = gnn_options(run, gnn_groups or {})
    chosen = with_gnn_options(choices(candidates), gnn)
    atomic_write_text(run / "potentials_choices.csv", chosen.to_csv(index=False))
    base = baselines(run)
    zero = (
        pd.read_csv(run / "potentials_zero_shot.csv")
        if (run / "potentials_zero_shot.csv").exists()
        and (run / "potentials_zero_shot.csv").stat().st_size > 1
        else pd.DataFrame()
    )
    costs = json.loads((run / "potentials_cost.json").read_text())
    models = sorted(m for m in chosen["model"].unique() if m != "best")
    lines = [
        "# Universal-potential features on the learning curve",
        "",
        "Frozen features of pretrained universal interatomic potentials (CHGNet 0.3.0, "
        "SevenNet-0; both trained on MPtrj) with a simple head, on the rows of the learning "
        "curve: the same training prefixes, the same 500 validation crystals and the whole test "
        "split. Each head's feature set and hyperparameters are chosen on validation; *best* is "
        "the head (and model) with the lowest validation MAE. Test MAE, mean over seeds (MLP: 5 "
        "seeds at n ≤ 300, 3 at 1,000; ridge and boosting are deterministic). Baselines from "
        "`label_vectors.csv` (CGCNN, chosen on validation) and `results.csv` (Magpie + boosting). "
        "Ratios are against CGCNN on `cgcnn` features (vanilla). The baselines' own leak class is "
        "in brackets: `uae` learned JARVIS and MP formation energies and band gaps (every "
        "benchmark validation and test formula removed), `megnet16` MP formation energies.",
        "",
        "Leak class of the potentials' cells: MP formation energy *seen* (MPtrj holds the MP "
        "energies of its test crystals); JARVIS formation energy *related* (energies of "
        "overlapping compounds, another functional); band gap and moduli *unseen* (stresses, "
        "not moduli, were labels).",
        "",
    ]
    present = set(chosen["property"])
    for prop in [p for p in PROPERTY_NAMES if p in present]:
        sub = chosen[chosen["property"] == prop]
        unit = sub["unit"].iloc[0]
        leak = sub["leak"].iloc[0]
        lines += [f"## {PROPERTY_NAMES.get(prop, prop)} ({unit}), potentials: {leak}", ""]
        header = ["option"] + [f"n = {n}" for n in sorted(sub["n_train"].unique())]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        sizes = sorted(sub["n_train"].unique())
        uae_leak = "seen" if prop in SEEN_PROPERTIES else "unseen"
        vanilla = {
            n: base[
                (base["property"] == prop) & (base["n_train"] == n) & (base["option"] == "vanilla")
            ]["test_mae"].mean()
            for n in sizes
        }
        for option in (*BASELINES, "magpie_hgb"):
            cells = []
            for n in sizes:
                row = base[
                    (base["property"] == prop) & (base["n_train"] == n) & (base["option"] == option)
                ]
                value = row["test_mae"].mean() if len(row) else np.nan
                cells.append(
                    f"{_fmt(value)}"
                    + ("" if option == "vanilla" else f" ({_ratio(value, vanilla[n])})")
                )
            name = {
                "vanilla": "CGCNN, `cgcnn`",
                "uae": f"CGCNN, `uae` ({uae_leak})",
                "finetune": f"`uae` fine-tuned ({uae_leak})",
                "megnet16": f"CGCNN, `megnet16` ({LEAK_CLASSES['mp-formation-energy'][prop]})",
                "magpie_hgb": "Magpie + boosting",
            }[option]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        for option in sorted(gnn["option"].unique()) if not gnn.empty else []:
            cells = []
            for n in sizes:
                row = gnn[(gnn["property"] == prop) & (gnn["n_train"] == n)]
                row = row[row["option"] == option]
                if row.empty:
                    cells.append("–")
                    continue
                r = row.iloc[0]
                cells.append(
                    f"{_fmt(r['test_mae'])} ({_ratio(r['test_mae'], vanilla[n])}; {r['chosen']}, "
                    f"{int(r['n_seeds'])} seeds)"
                )
            lines.append(f"| {GNN_NAMES.get(option, option)} | " + " | ".join(cells) + " |")
        for model in [*models, "best"]:
            for head in ("ridge", "hgb", "mlp", "best"):
                rows = sub[(sub["model"] == model) & (sub["head"] == head)]
                if rows.empty or (model == "best" and head != "best"):
                    continue
                cells = []
                for n in sizes:
                    row = rows[rows["n_train"] == n]
                    if row.empty:
                        cells.append("–")
                        continue
                    r = row.iloc[0]
                    what = r["feature_set"]
                    if head == "best":
                        what = f"{r['chosen_head']}, {what}"
                    if model == "best":
                        what = f"{r['chosen_model']} {what}"
                    cells.append(
                        f"{_fmt(r['test_mae'])} ({_ratio(r['test_mae'], vanilla[n])}; {what})"
                    )
                label = f"**{model}, {head}**" if head == "best" else f"{model}, {head}"
                if model == "best":
                    label = "**best potential option**"
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
        if not zero.empty and prop in set(zero["property"]):
            for _, z in zero[(zero["property"] == prop) & (zero["part"] == "test")].iterrows():
                lines.append(
                    f"| {z['model']} zero-shot {z['estimate']} (no training; r = "
                    f"{z['pearson_r']:.2f}, {z['n_failed']} failed) | "
                    + " | ".join(
                        f"{_fmt(z['mae'])} ({_ratio(z['mae'], vanilla[n])})" for n in sizes
                    )
                    + " |"
                )
        lines.append("")
    lines += _feature_groups(candidates)
    lines += ["## Targets", ""]
    lines += _targets(chosen, base)
    lines += ["", "## Cost", ""]
    groups = ("state", "site_stats", "crystal", "magmom", "bulk_modulus", "elastic")
    lines += [
        "Featurizing: wall seconds per 1,000 crystals of each feature group on one core (batch "
        "16), measured while featurizing the curve's crystals with other fits sharing the "
        "machine's 2 cores (upper bounds). Bulk and shear moduli share their crystals, so the "
        "shear rows read the cache. *state* runs first and pays the potential's forward and backward "
        "pass (energy, stress); the latent groups then read the cache; *bulk_modulus* and "
        "*elastic* evaluate 2 and 6 strained cells.",
        "",
        "| model / property | " + " | ".join(groups) + " | latent + physics |",
        "|---|" + "---:|" * (len(groups) + 1),
    ]
    for key, cost in costs.items():
        total = sum(cost.values())
        lines.append(
            f"| {key} | "
            + " | ".join(f"{cost[g] * 1000:.0f} s" if g in cost else "–" for g in groups)
            + f" | {total * 1000:.0f} s |"
        )
    fit_cost = candidates.groupby(["head", "n_train"])["fit_seconds"].median().unstack("n_train")
    if not gnn.empty:  # the graph-network options: median seconds per fit, one thread
        gnn_cost = gnn.pivot_table(
            index="option", columns="n_train", values="fit_seconds_median", aggfunc="median"
        )
        fit_cost = pd.concat([fit_cost, gnn_cost.rename(index=GNN_NAMES)])
    lines += [
        "",
        "Heads: median seconds per fit (one thread; the MLP per seed), over every candidate; the "
        "graph-network options' training time excludes the potential's site vectors (the "
        "*site_stats* column above):",
        "",
        "| head | " + " | ".join(f"n = {n}" for n in fit_cost.columns) + " |",
        "|---|" + "---:|" * len(fit_cost.columns),
    ]
    for head, row in fit_cost.iterrows():
        lines.append(f"| {head} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    text = "\n".join(lines) + "\n"
    atomic_write_text(run / "potentials.md", text)
    return text


def _feature_groups(candidates: pd.DataFrame) -> list[str]:
    """Which feature groups carry the signal: per cell, ridge's test MAE on each feature set
    (α chosen on validation for that set), and that fit's training MAE."""
    if "train_mae" not in candidates:
        candidates = candidates.assign(train_mae=np.nan)
    keys = ["model", "property", "n_train", "feature_set", "head", "params"]
    ridge = candidates[candidates["head"] == "ridge"]  # the head that tries every set
    mean = ridge.groupby(keys)[["val_mae", "test_mae", "train_mae"]].mean().reset_index()
    cell = ["model", "property", "n_train", "feature_set"]
    best = mean.loc[mean.groupby(cell)["val_mae"].idxmin()]
    sets = ["latent", "physics", "physics+fractions", "latent+physics", "latent+physics+fractions"]
    out = [
        "## Feature groups",
        "",
        "Ridge on each feature set (α chosen on validation): test MAE, in brackets the "
        "training MAE of that fit; the heads' own choices are in the tables above. *latent*: site statistics and crystal vector; "
        "*physics*: energy, pressure, von Mises stress, magnetic moments and, for the moduli, "
        "the strained-cell moduli; *fractions*: the element fractions of the composition.",
        "",
        "| model | property | n | " + " | ".join(sets) + " |",
        "|---|---|---:|" + "---:|" * len(sets),
    ]
    for (model, prop, n), group in best.groupby(["model", "property", "n_train"]):
        cells = []
        for name in sets:
            row = group[group["feature_set"] == name]
            if row.empty:
                cells.append("–")
                continue
            r = row.iloc[0]
            train = f" ({_fmt(r['train_mae'])})" if np.isfinite(r["train_mae"]) else ""
            cells.append(f"{_fmt(r['test_mae'])}{train}")
        out.append(f"| {model} | {prop} | {n} | " + " | ".join(cells) + " |")
    return [*out, ""]


def _targets(chosen: pd.DataFrame, base: pd.DataFrame) -> list[str]:
    best = chosen[(chosen["model"] == "best")]
    out = []

    def ratio(prop: str, n: int) -> tuple[float, str]:
        row = best[(best["property"] == prop) & (best["n_train"] == n)]
        ref = base[
            (base["property"] == prop) & (base["n_train"] == n) & (base["option"] == "vanilla")
        ]["test_mae"]
        if row.empty or ref.empty:
            return np.nan, "not fitted"
        r = row.iloc[0]
        return r[
            "test_mae"
        ] / ref.mean(), f"{r['chosen_model']} {r['chosen_head']}, {r['feature_set']}"

    checks = [
        ("bulk_modulus_kv", 100, 0.75),
        ("shear_modulus_gv", 100, 0.75),
        ("bulk_modulus_kv", 300, 0.85),
        ("shear_modulus_gv", 300, 0.85),
        ("mbj_bandgap", 100, 0.85),
        ("mbj_bandgap", 300, 0.85),
    ]
    out += [
        "| property | n | best / CGCNN | target | met | chosen |",
        "|---|---:|---:|---:|---|---|",
    ]
    for prop, n, target in checks:
        value, what = ratio(prop, n)
        met = "yes" if value <= target else ("no" if np.isfinite(value) else "–")
        out.append(f"| {prop} | {n} | {value:.3f} | ≤ {target} | {met} | {what} |")
    out += ["", "Structure workflow (best potential head against Magpie + boosting):", ""]
    for n in (100, 300):
        wins, total, cells = 0, 0, []
        for prop in best["property"].unique():
            row = best[(best["property"] == prop) & (best["n_train"] == n)]
            mag = base[
                (base["property"] == prop)
                & (base["n_train"] == n)
                & (base["option"] == "magpie_hgb")
            ]["test_mae"]
            if row.empty or mag.empty:
                continue
            total += 1
            ok = row.iloc[0]["test_mae"] <= mag.mean()
            wins += ok
            cells.append(
                f"{prop} {row.iloc[0]['test_mae'] / mag.mean():.2f}× ({row.iloc[0]['leak']})"
            )
        out.append(f"- n = {n}: at or below Magpie on {wins} of {total} ({'; '.join(cells)})")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.benchmark.potential_report")
    parser.add_argument("--run", default="training/results/bench_curve")
    parser.add_argument("--config", default="training/configs/bench_curve.yaml")
    args = parser.parse_args(argv)
    section = BenchConfig.from_yaml(args.config).curve.get("potential_report") or {}
    groups = {k: [v] if isinstance(v, str) else list(v) for k, v in section.items()}
    print(write_report(args.run, groups))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
