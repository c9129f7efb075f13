"""Figures of a run: embedding maps, parity plots, training curves, MAE bars."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from crysatom_featurizers.embeddings import spec_label
from crysatom_featurizers.io import save_figure
from training.benchmark.curve import TARGET, plot_curves
from training.benchmark.harness import Benchmark
from training.benchmark.report import summarize, without_variants
from training.benchmark.results import (
    fit_id,
    read_history,
)
from training.benchmark.transfer import plot_transfer, transfer_groups, transfer_table


def run_figures(bench: Benchmark) -> None:
    """Embedding maps, similarity heatmaps, parity plots, learning curves, MAE bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crysatom_featurizers import plotting

    fc = bench.cfg.figures
    folder = bench.run_dir / "figures"
    folder.mkdir(exist_ok=True)
    methods = list(fc.get("methods", ["pca", "tsne"]))
    colorings = list(fc.get("color_by", ["group", "block"]))
    for spec in fc.get("embeddings", bench.cfg.embeddings):
        label = spec_label(spec)
        emb = bench.embedding(label, spec)
        if emb is None:
            continue
        maps = (folder / f"map_{label}.png", folder / f"similarity_{label}.png")
        if bench.resume and all(p.exists() for p in maps):
            continue
        bench.check_time()
        fig, axes = plt.subplots(
            len(colorings),
            len(methods),
            figsize=(8.5 * len(methods), 6.5 * len(colorings)),
            layout="constrained",
            squeeze=False,
        )
        for i, color_by in enumerate(colorings):
            for j, method in enumerate(methods):
                plotting.plot_embedding_map(
                    emb,
                    method=method,
                    color_by=color_by,
                    ax=axes[i, j],
                    legend=j == len(methods) - 1,
                )
        save_figure(fig, folder / f"map_{label}.png", dpi=int(fc.get("dpi", 110)))
        plt.close(fig)
        ax = plotting.plot_similarity_heatmap(emb)
        save_figure(ax.figure, folder / f"similarity_{label}.png", dpi=int(fc.get("dpi", 110)))
        plt.close(ax.figure)
    plot_results(bench, plt, plotting, folder, fc)


def plot_results(bench: Benchmark, plt, plotting, folder: Path, fc: dict[str, Any]) -> None:
    frame = bench.results.read()
    if frame.empty:
        return
    first_seed = bench.cfg.seeds[0]
    dpi = int(fc.get("dpi", 110))
    for (experiment, prop), group in frame.groupby(["experiment", "property"], sort=False):
        runs = group[(group["seed"] == first_seed) & (group["train_fraction"] == 1.0)]
        labels = list(dict.fromkeys(runs["embedding"]))
        unit = str(group["unit"].iloc[0])
        pred_files = [
            (
                lab,
                bench.run_dir
                / "predictions"
                / f"{fit_id(experiment, prop, lab, first_seed, 1.0)}.csv.gz",
            )
            for lab in labels
        ]
        pred_files = [(lab, p) for lab, p in pred_files if p.exists()]
        if pred_files and fc.get("parity", True):
            fig, axes = grid(plt, len(pred_files), 4.2)
            for ax, (lab, path) in zip(axes, pred_files):
                pred = pd.read_csv(path)
                plotting.plot_parity(
                    pred["y_true"], pred["y_pred"], ax=ax, units=unit, label=prop, title=lab
                )
            for ax in axes[len(pred_files) :]:
                ax.set_visible(False)
            fig.suptitle(f"{experiment}: {prop}, test set, seed {first_seed}")
            save_figure(fig, folder / f"parity_{experiment}_{prop}.png", dpi=dpi)
            plt.close(fig)
        hist_files = [
            (lab, read_history(bench.run_dir, fit_id(experiment, prop, lab, first_seed, 1.0)))
            for lab in labels
        ]
        hist_files = [(lab, h) for lab, h in hist_files if h is not None]
        if hist_files and fc.get("learning_curves", True):
            fig, axes = grid(plt, len(hist_files), 4.2)
            best = dict(zip(runs["embedding"], runs["best_epoch"]))
            for ax, (lab, history) in zip(axes, hist_files):
                fitted = SimpleNamespace(history_=history)
                if np.isfinite(best.get(lab, np.nan)):
                    fitted.best_epoch_ = int(best[lab])
                plotting.plot_learning_curve(fitted, ax=ax, units=unit)
                ax.set_title(lab)
            for ax in axes[len(hist_files) :]:
                ax.set_visible(False)
            fig.suptitle(f"{experiment}: {prop}, seed {first_seed}")
            save_figure(fig, folder / f"learning_{experiment}_{prop}.png", dpi=dpi)
            plt.close(fig)
    summary = summarize(frame)
    for experiment, group in summary.groupby("experiment", sort=False):
        full = group[group["train_fraction"] == 1.0]
        props = list(dict.fromkeys(full["property"]))
        if not props:
            continue
        fig, axes = grid(plt, len(props), 4.0)
        for ax, prop in zip(axes, props):
            rows = full[full["property"] == prop]
            ax.barh(rows["embedding"], rows["mae_mean"], xerr=rows["mae_std"].fillna(0))
            ax.invert_yaxis()
            ax.set_xlabel(f"test MAE ({rows['unit'].iloc[0]})")
            ax.set_title(prop)
        for ax in axes[len(props) :]:
            ax.set_visible(False)
        fig.suptitle(f"{experiment}: test MAE, mean ± std over seeds")
        save_figure(fig, folder / f"mae_{experiment}.png", dpi=dpi)
        plt.close(fig)
    scarce = summary[summary["experiment"] == "scarce"]
    if not scarce.empty:
        props = list(dict.fromkeys(scarce["property"]))
        fig, axes = grid(plt, len(props), 4.2)
        for ax, prop in zip(axes, props):
            rows = scarce[scarce["property"] == prop]
            for lab, sub in rows.groupby("embedding", sort=False):
                sub = sub.sort_values("n_train")
                ax.errorbar(
                    sub["n_train"], sub["mae_mean"], yerr=sub["mae_std"].fillna(0), label=lab
                )
            ax.set_xscale("log")
            ax.set_xlabel("training crystals")
            ax.set_ylabel(f"test MAE ({rows['unit'].iloc[0]})")
            ax.set_title(prop)
            ax.legend(fontsize=7)
        for ax in axes[len(props) :]:
            ax.set_visible(False)
        save_figure(fig, folder / "scarce.png", dpi=dpi)
        plt.close(fig)
    plot_curves(
        without_variants(frame, bench.cfg), folder, dpi, str(bench.cfg.curve.get("target", TARGET))
    )
    groups = transfer_groups(bench.cfg.curve.get("transfer") or {})
    if groups:
        plot_transfer(transfer_table(frame, bench.run_dir, groups), folder / "transfer.png", dpi)


def grid(plt, n: int, size: float):
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(size * cols, size * rows), layout="constrained", squeeze=False
    )
    return fig, list(axes.ravel())
