"""The learning curve: test MAE against training size, paired-seed verdicts, figures.

Rows come from the ``curve`` experiment (CGCNN, early stopping on the fixed validation set)
and ``curve_matminer`` (composition featurizer + HistGradientBoosting on the same rows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

#: The embedding judged, and what it is judged against.
TARGET = "crysatom_200"
REFERENCES: tuple[str, ...] = ("cgcnn", "crysatom_authors_200", "skipatom")
#: Colours of the embeddings the report is about, the same in every figure.
FIXED_COLOURS = {
    TARGET: "black",
    "cgcnn": "tab:blue",
    "crysatom_authors_200": "tab:red",
    "skipatom": "tab:green",
    "random": "tab:gray",
}
#: Two-sided paired t-test level for a win or a loss; anything else is a tie.
ALPHA = 0.05


#: What identifies one fit in ``results.csv``.
FIT_KEY = ["experiment", "property", "embedding", "seed", "n_train"]


def curve_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the learning-curve experiments, one per fit (the last one written wins)."""
    if frame.empty:
        return frame
    rows = frame[frame["experiment"].astype(str).str.startswith("curve")].copy()
    if "unit" in rows.columns:
        rows["unit"] = rows["unit"].fillna("")
    return rows.drop_duplicates(FIT_KEY, keep="last")


def curve_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count over seeds per (experiment, property, embedding, n_train)."""
    rows = curve_rows(frame)
    if rows.empty:
        return pd.DataFrame()
    keys = ["experiment", "model", "property", "unit", "embedding", "n_train"]
    return (
        rows.groupby(keys, sort=False, dropna=False)
        .agg(
            mae_mean=("test_mae", "mean"),
            mae_std=("test_mae", "std"),
            n_seeds=("seed", "nunique"),
            epochs_median=("epochs_run", "median"),
            best_epoch_median=("best_epoch", "median"),
            fit_seconds=("fit_seconds", "sum"),
        )
        .reset_index()
    )


def paired_verdict(
    frame: pd.DataFrame, prop: str, n_train: int, embedding: str, reference: str
) -> dict[str, float | str | int]:
    """``embedding`` against ``reference`` at one cell, over the seeds both have.

    The test MAEs are paired by model seed (same training rows, same initialisation seed).
    ``win``/``loss`` when a two-sided paired t-test gives p < :data:`ALPHA`, else ``tie``;
    with fewer than two paired seeds the verdict is ``n/a``. The seeds vary the model's
    initialisation only (the split and the training rows are fixed), so a verdict holds for
    this split; there is no correction for testing many cells.
    """
    rows = curve_rows(frame)
    cgcnn_rows = rows[(rows["experiment"] == "curve") & (rows["property"] == prop)]
    cgcnn_rows = cgcnn_rows[cgcnn_rows["n_train"].astype(int) == int(n_train)]
    a = cgcnn_rows[cgcnn_rows["embedding"] == embedding].set_index("seed")["test_mae"]
    b = cgcnn_rows[cgcnn_rows["embedding"] == reference].set_index("seed")["test_mae"]
    seeds = sorted(set(a.index) & set(b.index))
    out: dict[str, float | str | int] = {
        "property": prop,
        "n_train": int(n_train),
        "embedding": embedding,
        "reference": reference,
        "n_pairs": len(seeds),
    }
    if len(seeds) < 2:
        return {**out, "rel_diff_pct": math.nan, "p_value": math.nan, "verdict": "n/a"}
    x, y = a.loc[seeds].to_numpy(float), b.loc[seeds].to_numpy(float)
    diff = x - y
    rel = 100.0 * float(diff.mean()) / float(y.mean())
    if np.allclose(diff, diff[0]):  # identical differences: the t statistic is undefined
        # the same sign in every pair counts only with at least three pairs
        p = 0.0 if diff[0] != 0 and len(seeds) >= 3 else 1.0
    else:
        p = float(stats.ttest_rel(x, y).pvalue)
    verdict = "tie" if p >= ALPHA else ("win" if diff.mean() < 0 else "loss")
    return {**out, "rel_diff_pct": rel, "p_value": p, "verdict": verdict}


def verdict_table(
    frame: pd.DataFrame, target: str = TARGET, references: Sequence[str] = REFERENCES
) -> pd.DataFrame:
    """:func:`paired_verdict` of ``target`` against each reference at every cell."""
    rows = curve_rows(frame)
    rows = rows[rows["experiment"] == "curve"]
    out = []
    for (prop, n), _ in rows.groupby(["property", "n_train"], sort=False):
        for ref in references:
            if ref == target:
                continue
            out.append(paired_verdict(rows, prop, int(n), target, ref))
    return pd.DataFrame(out)


def attach_validation(
    frame: pd.DataFrame, run_dir: Path, columns: Sequence[str] = ("val_mae",)
) -> pd.DataFrame:
    """Add ``columns`` of each fit's history (:func:`training.benchmark.results.read_history`;
    by default ``val_mae``, the validation MAE) at its kept (best) epoch.

    NaN for rows without a history (the matminer workflow has no validation step).
    """
    from training.benchmark.results import read_history, row_fit_id

    rows = curve_rows(frame)
    values: dict[str, list[float]] = {column: [] for column in columns}
    for row in rows.to_dict("records"):
        best = row.get("best_epoch")
        history = read_history(run_dir, row_fit_id(row)) if np.isfinite(best) else None
        for column in columns:
            match = (
                history.loc[history["epoch"] == int(best), column]
                if history is not None and column in history
                else ()
            )
            values[column].append(float(match.iloc[0]) if len(match) else math.nan)
    for column in columns:
        rows[column] = values[column]
    return rows


def candidate_selection(
    frame: pd.DataFrame,
    run_dir: Path,
    candidates: Sequence[str],
    sizes: Sequence[int] = (100, 300),
    reference: str = "cgcnn",
) -> pd.DataFrame:
    """Rank candidate vectors on validation data only (never on the test set).

    The score of a candidate is its validation MAE divided by the ``reference`` embedding's
    in the same cell and seed (property x training size x seed; a unit-free ratio, so the
    properties weigh alike), as a geometric mean over the cells at ``sizes`` that every
    candidate has. The lowest wins.
    """
    rows = attach_validation(frame, run_dir)
    rows = rows[(rows["experiment"] == "curve") & rows["n_train"].astype(int).isin(sizes)]
    keys = ["property", "n_train", "seed"]
    ref = rows[rows["embedding"] == reference].set_index(keys)["val_mae"]
    ratios = {}
    for label in candidates:
        sub = rows[rows["embedding"] == label].set_index(keys)["val_mae"]
        both = sub.index.intersection(ref.index)
        ratios[label] = np.log(sub.loc[both] / ref.loc[both]).dropna()
    common = None
    for series in ratios.values():
        common = series.index if common is None else common.intersection(series.index)
    out = []
    for label, series in ratios.items():
        shared = series.loc[common] if common is not None else series
        out.append(
            {
                "candidate": label,
                "n_cells": len(shared),
                "mean_val_ratio": float(np.exp(shared.mean())) if len(shared) else math.nan,
                "mean_val_ratio_all_cells": (
                    float(np.exp(series.mean())) if len(series) else math.nan
                ),
            }
        )
    table = pd.DataFrame(out).sort_values("mean_val_ratio", na_position="last")
    table["chosen"] = False
    if len(table) and np.isfinite(table["mean_val_ratio"].iloc[0]):
        table.loc[table.index[0], "chosen"] = True
    return table.reset_index(drop=True)


def _cell(row) -> str:
    std = "" if not np.isfinite(row.mae_std) else f" ± {row.mae_std:.3g}"
    return f"{row.mae_mean:.3g}{std}"


def curve_markdown(
    frame: pd.DataFrame,
    epoch_cap: int | None = None,
    target: str = TARGET,
    references: Sequence[str] = REFERENCES,
) -> list[str]:
    """Markdown: one table per property, the verdicts of ``target``, convergence statistics."""
    summary = curve_summary(frame)
    if summary.empty:
        return []
    lines = [
        "## Learning curves (test MAE, mean ± std over model seeds)",
        "",
        "`hgb` rows: the matminer workflow (composition featurizer, 5 statistics, "
        "HistGradientBoosting) on the same training rows, one deterministic model.",
        "",
    ]
    for prop, group in summary.groupby("property", sort=False):
        sizes = sorted(group["n_train"].astype(int).unique())
        unit = group["unit"].iloc[0]
        lines += [f"### {prop} ({unit})", ""]
        lines.append("| model | embedding | " + " | ".join(f"n = {n}" for n in sizes) + " |")
        lines.append("|---|---|" + "---:|" * len(sizes))
        for (model, emb), sub in group.groupby(["model", "embedding"], sort=False):
            cells = []
            for n in sizes:
                match = sub[sub["n_train"].astype(int) == n]
                cells.append(_cell(next(match.itertuples())) if len(match) else "–")
            short = "cgcnn" if model == "cgcnn" else "hgb"
            lines.append(f"| {short} | {emb} | " + " | ".join(cells) + " |")
        seeds = group[group["model"] == "cgcnn"]["n_seeds"]
        if len(seeds):
            lines += ["", f"CGCNN seeds per cell: {int(seeds.min())}–{int(seeds.max())}."]
        lines.append("")
    verdicts = verdict_table(frame, target, references)
    if not verdicts.empty:
        lines += [
            f"### `{target}` against the references (paired seeds)",
            "",
            f"Relative difference of the mean test MAE (negative: `{target}` lower), "
            f"two-sided paired t-test over model seeds; win/loss at p < {ALPHA}, else tie.",
            "",
        ]
        refs = list(dict.fromkeys(verdicts["reference"]))
        lines.append("| property | n | " + " | ".join(f"vs {r}" for r in refs) + " |")
        lines.append("|---|---:|" + "---|" * len(refs))
        for (prop, n), sub in verdicts.groupby(["property", "n_train"], sort=False):
            cells = []
            for ref in refs:
                match = sub[sub["reference"] == ref]
                if not len(match) or match["verdict"].iloc[0] == "n/a":
                    cells.append("–")
                    continue
                r = match.iloc[0]
                cells.append(f"{r.verdict} ({r.rel_diff_pct:+.1f}%, p={r.p_value:.2g})")
            lines.append(f"| {prop} | {n} | " + " | ".join(cells) + " |")
        counts = verdicts[verdicts["verdict"] != "n/a"].groupby(["reference", "verdict"]).size()
        tally = "; ".join(
            f"vs {ref}: "
            + ", ".join(f"{counts.get((ref, v), 0)} {v}" for v in ("win", "tie", "loss"))
            for ref in refs
        )
        lines += [
            "",
            f"Tally over the cells: {tally}. Descriptive: each verdict holds for this split "
            "(the seeds vary the initialisation only), with no correction for testing many "
            "cells.",
            "",
        ]
    fits = curve_rows(frame)
    fits = fits[fits["experiment"] == "curve"]
    if len(fits):
        capped = int((fits["epochs_run"].astype(int) >= int(epoch_cap)).sum()) if epoch_cap else 0
        lines += [
            "### Convergence",
            "",
            f"{len(fits)} CGCNN fits; epochs run: median {fits['epochs_run'].median():.0f} "
            f"(range {int(fits['epochs_run'].min())}–{int(fits['epochs_run'].max())}); best "
            f"epoch: median {fits['best_epoch'].median():.0f}; fits that reached the "
            f"{epoch_cap}-epoch cap: {capped}. Wall time of the fits (one thread each; shared "
            "cores, so an upper bound): "
            + ", ".join(
                f"n = {int(n)}: {sub['fit_seconds'].sum() / 3600:.2f} h ({len(sub)} fits)"
                for n, sub in fits.groupby("n_train")
            )
            + ".",
            "",
        ]
    return lines


def curve_styles(labels: list[str], target: str = TARGET) -> dict[str, tuple[str, str]]:
    """A (colour, marker) pair per embedding label, the same in every figure of a run.

    ``target`` is black and the other labels of :data:`FIXED_COLOURS` keep their colours, all
    with circles. The remaining labels take tab10's six other colours in order; every six of
    them the marker changes, so the pairs stay distinct for up to 36 such labels.
    """
    palette = ["tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]
    shapes = ["o", "^", "D", "v", "P", "X"]
    fixed = {label: c for label, c in FIXED_COLOURS.items() if label != TARGET}
    fixed[target] = "black"
    others = [label for label in labels if label not in fixed]
    style = {
        label: (palette[i % len(palette)], shapes[i // len(palette) % len(shapes)])
        for i, label in enumerate(others)
    }
    style.update({label: (fixed[label], "o") for label in labels if label in fixed})
    return style


def plot_curves(
    frame: pd.DataFrame, folder: Path, dpi: int = 110, target: str = TARGET
) -> list[Path]:
    """One PNG per property: test MAE against training size, log-log, error bars = std.

    Left panel: CGCNN at convergence per embedding; right panel: the matminer workflow
    (composition featurizer + HistGradientBoosting, dashed). An embedding has the same colour
    and marker in both.
    """
    import matplotlib.pyplot as plt

    from crysatom_featurizers.io import atomic_write

    summary = curve_summary(frame)
    paths: list[Path] = []
    if summary.empty:
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    style = curve_styles(list(dict.fromkeys(summary["embedding"])), target)
    for prop, group in summary.groupby("property", sort=False):
        fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.6), layout="constrained", sharey=True)
        panels = (("cgcnn", "CGCNN, early stopping"), ("hgb", "matminer composition + HGB"))
        for ax, (kind, title) in zip(axes, panels):
            rows = group[(group["model"] == "cgcnn") == (kind == "cgcnn")]
            for emb, sub in rows.groupby("embedding", sort=False):
                sub = sub.sort_values("n_train")
                ax.errorbar(
                    sub["n_train"],
                    sub["mae_mean"],
                    yerr=sub["mae_std"].fillna(0.0),
                    marker=style[emb][1],
                    linestyle="-" if kind == "cgcnn" else "--",
                    linewidth=2.6 if emb == target else 1.2,
                    color=style[emb][0],
                    capsize=3,
                    label=emb,
                )
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("training crystals")
            ax.set_title(title)
            ax.grid(True, which="both", alpha=0.3)
            if len(rows):
                ax.legend(fontsize=7)
        axes[0].set_ylabel(f"test MAE ({group['unit'].iloc[0]})")
        fig.suptitle(f"{prop}: learning curves, mean ± std over model seeds")
        path = folder / f"curve_{prop}.png"
        with atomic_write(path, "wb") as handle:
            fig.savefig(handle, dpi=dpi, format="png")
        plt.close(fig)
        paths.append(path)
    return paths
