"""ALIGNN against CGCNN on the learning curve, and the choice of ALIGNN's CPU preset.

The ``curve.alignn_report`` section of a config names the labels: ``vanilla`` (CGCNN on its
own features), ``vectors`` (CGCNN on other vectors), ``alignn`` (ALIGNN's CPU preset on
CGCNN's features) and ``alignn_vectors`` (ALIGNN on the other vectors; several labels of an
option compete on validation), and ``preset_candidates``,
the architectures the CPU preset was chosen from. Every option is scored as in
:func:`training.benchmark.transfer.transfer_table`: chosen on validation, test MAE over paired
seeds, change against vanilla CGCNN. The preset table ranks the candidates on validation MAE
at one training size among those whose fits end within the time budget.

Usage::

    python -m training.benchmark.alignn --run training/results/bench_curve
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from crysatom_featurizers.io import atomic_write_text
from training.benchmark.config import BenchConfig
from training.benchmark.curve import attach_validation
from training.benchmark.results import ResultsFile
from training.benchmark.transfer import option_table, plot_transfer, transfer_table

#: Options of the report, in order.
ALIGNN_OPTIONS = ("vanilla", "vectors", "alignn", "alignn_vectors")
#: At n = 1,000, ALIGNN's test MAE should be at most this share of CGCNN's on these.
TARGET_RATIO = 0.85
TARGET_PROPERTIES = ("formation_energy_peratom", "mbj_bandgap")
#: A converged fit on 1,000 crystals must end within this on one core (s).
PRESET_BUDGET_S = 1800.0


def alignn_groups(section: Mapping[str, object]) -> dict[str, list[str]]:
    """Option -> candidate labels, from a config's ``curve.alignn_report`` section."""
    out: dict[str, list[str]] = {}
    for option in ALIGNN_OPTIONS:
        value = section.get(option)
        if value:
            out[option] = [str(value)] if isinstance(value, str) else [str(v) for v in value]
    return out


def alignn_properties(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the properties ALIGNN was fitted on; CGCNN-only properties are dropped."""
    fitted = table.loc[table["option"].str.startswith("alignn"), "property"].unique()
    return table[table["property"].isin(fitted)]


def preset_table(
    frame: pd.DataFrame, run_dir: Path, candidates: Sequence[str], n_train: int
) -> pd.DataFrame:
    """Validation MAE, epochs and fit time of each preset candidate at ``n_train``, per
    property and seed; ``within_budget`` when the fit took at most :data:`PRESET_BUDGET_S`."""
    rows = attach_validation(frame, run_dir)
    rows = rows[
        (rows["experiment"] == "curve")
        & rows["embedding"].isin(list(candidates))
        & (rows["n_train"] == int(n_train))
    ]
    columns = ["property", "embedding", "seed", "val_mae", "test_mae", "epochs_run"]
    table = rows[[*columns, "fit_seconds"]].copy()
    table["within_budget"] = table["fit_seconds"] <= PRESET_BUDGET_S
    return table.sort_values(["property", "val_mae"]).reset_index(drop=True)


def fit_table(frame: pd.DataFrame, run_dir: Path, labels: Mapping[str, str]) -> pd.DataFrame:
    """How well each labelled fit learned its training crystals: training and validation MAE
    at the kept epoch, their ratio, epochs and s/epoch, averaged over the seeds that every
    option has in a cell (cells that some option lacks are left out).

    ``labels`` maps an option name to one embedding label. The training MAE is the mean over
    the kept epoch's batches (weights still moving), so it slightly overstates the final one.
    """
    rows = attach_validation(frame, run_dir, columns=("train_mae", "val_mae"))
    names = {label: option for option, label in labels.items()}
    rows = rows[(rows["experiment"] == "curve") & rows["embedding"].isin(list(names))].copy()
    if rows.empty:
        return pd.DataFrame()
    rows["option"] = rows["embedding"].map(names)
    # only cells every option has, on the seeds they share
    cell = ["property", "n_train", "seed"]
    shared = rows.groupby(cell)["option"].transform("nunique") == len(names)
    rows = rows[shared]
    if rows.empty:
        return pd.DataFrame()
    rows["val_over_train"] = rows["val_mae"] / rows["train_mae"]
    rows["s_per_epoch"] = rows["fit_seconds"] / rows["epochs_run"]
    keys = ["property", "n_train", "option"]
    stats = ["train_mae", "val_mae", "val_over_train", "epochs_run", "best_epoch", "s_per_epoch"]
    table = rows.groupby(keys)[stats].mean()
    table["seeds"] = rows.groupby(keys)["seed"].nunique()
    return table.reset_index()


def fit_lines(fits: pd.DataFrame | None) -> list[str]:
    """Markdown for :func:`fit_table` (none without fits)."""
    if fits is None or fits.empty:
        return []
    lines = [
        "## Fit at the kept epoch (mean over seeds)",
        "",
        "Training MAE over the kept epoch's batches, validation MAE, their ratio (how much "
        "worse the model does on crystals it did not fit), epochs and s/epoch.",
        "",
        "| property | n | model | seeds | train MAE | validation MAE | val / train | epochs "
        "(best) | s/epoch |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in fits.itertuples(index=False):
        lines.append(
            f"| {r.property} | {int(r.n_train):,} | {r.option} | {r.seeds} | "
            f"{r.train_mae:.4g} | {r.val_mae:.4g} | {r.val_over_train:.2f} | "
            f"{r.epochs_run:.0f} ({r.best_epoch:.0f}) | {r.s_per_epoch:.2f} |"
        )
    return [*lines, ""]


def chosen_preset(presets: pd.DataFrame) -> str | None:
    """The candidate with the lowest mean validation MAE (relative to the best candidate of
    each property, averaged over properties) among those always within the budget."""
    if presets.empty:
        return None
    ok = presets.groupby("embedding")["within_budget"].all()
    fits = presets[presets["embedding"].isin(ok[ok].index)]
    if fits.empty:
        return None
    means = fits.groupby(["property", "embedding"])["val_mae"].mean().unstack("embedding")
    relative = means.div(means.min(axis=1), axis=0).mean(axis=0)
    return str(relative.idxmin())


def target_lines(table: pd.DataFrame, n_train: int = 1000) -> list[str]:
    """Whether ALIGNN is at most :data:`TARGET_RATIO` of CGCNN's test MAE at ``n_train``."""
    lines = [
        f"## Target: ALIGNN ≤ {TARGET_RATIO:.2f}× CGCNN at n = {n_train:,}",
        "",
        "| property | ALIGNN / CGCNN | met |",
        "|---|---:|---|",
    ]
    for prop in TARGET_PROPERTIES:
        row = table[
            (table["option"] == "alignn")
            & (table["property"] == prop)
            & (table["n_train"] == n_train)
        ]
        if row.empty or "rel_vs_vanilla_pct" not in row:
            lines.append(f"| {prop} | not run | |")
            continue
        ratio = 1.0 + float(row["rel_vs_vanilla_pct"].iloc[0]) / 100.0
        met = "yes" if ratio <= TARGET_RATIO else "no"
        lines.append(f"| {prop} | {ratio:.3f} | {met} |")
    return [*lines, ""]


def alignn_markdown(
    table: pd.DataFrame,
    presets: pd.DataFrame,
    n_preset: int,
    fits: pd.DataFrame | None = None,
) -> list[str]:
    """The report: the preset choice, one table per property, the target, and how well the
    fits learned their training crystals."""
    lines = [
        "# ALIGNN against CGCNN on the learning curve",
        "",
        "Test MAE, mean ± std over the seeds every option of the cell shares; in brackets the "
        "change against CGCNN on its own features and the paired verdict. Same rows, "
        "validation crystals, early stopping and training settings as every curve fit.",
        "",
    ]
    if not presets.empty:
        chosen = chosen_preset(presets)
        lines += [
            f"## The CPU preset, chosen on validation at n = {n_preset:,}",
            "",
            f"Candidates fitted to convergence on one core; a fit must end within "
            f"{PRESET_BUDGET_S / 60:.0f} min. Chosen: `{chosen}`.",
            "",
            "| property | candidate | seed | validation MAE | test MAE | epochs | fit (min) |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in presets.itertuples(index=False):
            lines.append(
                f"| {r.property} | {r.embedding} | {r.seed} | {r.val_mae:.4g} | "
                f"{r.test_mae:.4g} | {r.epochs_run} | {r.fit_seconds / 60:.1f} |"
            )
        lines.append("")
    for prop, group in table.groupby("property", sort=True):
        lines += [f"## {prop} ({group['unit'].iloc[0]})", ""]
        lines += option_table(group, ALIGNN_OPTIONS, seeds=True)
        lines.append("")
    return lines + target_lines(table) + fit_lines(fits)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.benchmark.alignn", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--run", default="training/results/bench_curve")
    parser.add_argument("--config", default="training/configs/bench_curve.yaml")
    args = parser.parse_args(argv)
    run_dir = Path(args.run)
    cfg = BenchConfig.from_yaml(args.config)
    section = cfg.curve.get("alignn_report") or {}
    groups = alignn_groups(section)
    if "vanilla" not in groups or "alignn" not in groups:
        parser.error("the config's curve.alignn_report needs vanilla and alignn labels")
    frame = ResultsFile(run_dir / "results.csv").read()
    table = alignn_properties(transfer_table(frame, run_dir, groups))
    n_preset = int(section.get("preset_size", 1000))
    presets = preset_table(frame, run_dir, section.get("preset_candidates") or [], n_preset)
    fits = fit_table(frame, run_dir, {"CGCNN": groups["vanilla"][0], "ALIGNN": groups["alignn"][0]})
    lines = alignn_markdown(table, presets, n_preset, fits)
    atomic_write_text(run_dir / "alignn.md", "\n".join(lines) + "\n")
    atomic_write_text(run_dir / "alignn.csv", table.to_csv(index=False, float_format="%.6g"))
    plot_transfer(
        table,
        run_dir / "figures" / "alignn.png",
        options=ALIGNN_OPTIONS,
        title="ALIGNN (CPU preset) against CGCNN, mean ± std over seeds",
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
