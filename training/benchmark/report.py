"""``summary.csv`` and ``results.md`` from ``results.csv``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from crysatom_featurizers.io import atomic_write_text
from training.benchmark.config import (
    BASELINE,
    CGCNN_EXPERIMENTS,
    PAPER_MAE,
    BenchConfig,
)
from training.benchmark.curve import (
    REFERENCES,
    TARGET,
    candidate_selection,
    curve_markdown,
    verdict_table,
)
from training.benchmark.results import (
    ResultsFile,
)
from training.benchmark.transfer import transfer_groups, transfer_markdown, transfer_table


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds, and the change against ``cgcnn`` in %.

    The baseline of a row is the ``cgcnn`` row of the same model family (CGCNN, or the same
    matminer workflow), property and train fraction, taken from the same experiment or, for
    the dimension and SSL ablations, from the comparison experiment.
    """
    if frame.empty:
        return pd.DataFrame()
    keys = ["experiment", "model", "property", "unit", "embedding", "dim", "train_fraction"]
    grouped = frame.groupby(keys, sort=False, dropna=False)
    summary = grouped.agg(
        mae_mean=("test_mae", "mean"),
        mae_std=("test_mae", "std"),
        rmse_mean=("test_rmse", "mean"),
        r2_mean=("test_r2", "mean"),
        n_seeds=("seed", "nunique"),
        n_train=("n_train", "first"),
        n_val=("n_val", "first"),
        n_test=("n_test", "first"),
        epochs_run=("epochs_run", "mean"),
        fit_seconds=("fit_seconds", "mean"),
    ).reset_index()
    base = summary[summary["embedding"] == BASELINE]
    lookup = {
        (r.experiment, r.model, r.property, r.train_fraction): (r.mae_mean, r.mae_std)
        for r in base.itertuples()
    }
    rel, base_mae, base_std = [], [], []
    for r in summary.itertuples():
        ref = lookup.get((r.experiment, r.model, r.property, r.train_fraction))
        if ref is None:
            ref = lookup.get(("comparison", r.model, r.property, r.train_fraction))
        if ref is None:
            rel.append(math.nan)
            base_mae.append(math.nan)
            base_std.append(math.nan)
        else:
            rel.append(100.0 * (r.mae_mean - ref[0]) / ref[0])
            base_mae.append(ref[0])
            base_std.append(ref[1])
    summary["rel_vs_cgcnn_pct"] = rel
    summary["cgcnn_mae"] = base_mae
    summary["cgcnn_std"] = base_std
    return summary


def _verdict(row) -> str:
    """win / tie / loss against cgcnn: a tie when the gap is within the seed noise."""
    if not np.isfinite(row.cgcnn_mae) or row.embedding == BASELINE:
        return ""
    gap = row.mae_mean - row.cgcnn_mae
    if not np.isfinite(row.mae_std) and not np.isfinite(row.cgcnn_std):
        return "lower" if gap < 0 else "higher"  # one model each: no seed spread to judge by
    noise = math.sqrt(np.nan_to_num(row.mae_std) ** 2 + np.nan_to_num(row.cgcnn_std) ** 2)
    if abs(gap) <= noise:
        return "tie"
    return "win" if gap < 0 else "loss"


def _cell(row) -> str:
    std = "" if not np.isfinite(row.mae_std) else f" ± {row.mae_std:.3g}"
    if row.embedding == BASELINE:
        rel = " (ref.)"
    elif np.isfinite(row.rel_vs_cgcnn_pct):
        rel = f" ({row.rel_vs_cgcnn_pct:+.1f}%)"
    else:
        rel = ""
    return f"{row.mae_mean:.4g}{std}{rel}"


def markdown_tables(summary: pd.DataFrame) -> list[str]:
    """One table per experiment: rows embeddings, columns properties (and fractions)."""
    lines: list[str] = []
    titles = {
        "comparison": "Experiment 1: embeddings as CGCNN input features",
        "dimension": "Experiment 2: CrysAtom dimension",
        "ssl": "Experiment 3: self-supervised loss of the pretraining",
        "scarce": "Experiment 4: data-scarce regime (fraction of the training budget)",
        "matminer_composition": (
            "Experiment 5a: composition featurizer (5 statistics) + HistGradientBoosting"
        ),
        "matminer_structure": (
            "Experiment 5b: structure featurizer site statistics + structure descriptors "
            "+ HistGradientBoosting"
        ),
    }
    order = [*CGCNN_EXPERIMENTS, "matminer_composition", "matminer_structure"]
    present = list(dict.fromkeys(summary["experiment"]))
    present = [e for e in order if e in present] + [e for e in present if e not in order]
    for experiment in present:
        group = summary[summary["experiment"] == experiment].copy()
        group["column"] = [
            p if f == 1.0 else f"{p} @{f:g} (n={n})"
            for p, f, n in zip(group["property"], group["train_fraction"], group["n_train"])
        ]
        columns = list(dict.fromkeys(group["column"]))
        units = dict(zip(group["column"], group["unit"]))
        embeddings = list(dict.fromkeys(group["embedding"]))
        lines += [f"### {titles.get(experiment, experiment)}", ""]
        lines.append(
            "| embedding | dim | " + " | ".join(f"{c} ({units[c]})" for c in columns) + " |"
        )
        lines.append("|---|---:|" + "---:|" * len(columns))
        for emb in embeddings:
            rows = group[group["embedding"] == emb]
            cells = []
            for c in columns:
                match = rows[rows["column"] == c]
                cells.append(_cell(next(match.itertuples())) if len(match) else "–")
            dim = rows["dim"].iloc[0]
            lines.append(f"| {emb} | {int(dim)} | " + " | ".join(cells) + " |")
        sizes = group.drop_duplicates("column")[["column", "n_train", "n_val", "n_test"]]
        seeds = sorted(set(group["n_seeds"]))
        lines += [
            "",
            "Rows: "
            + "; ".join(
                f"{r.column}: {r.n_train} train / {r.n_val} val / {r.n_test} test"
                for r in sizes.itertuples()
            )
            + f". Seeds per cell: {', '.join(map(str, seeds))}.",
            "",
        ]
        verdicts = [
            (r.property, r.train_fraction, r.embedding, _verdict(r))
            for r in group.itertuples()
            if str(r.embedding).startswith("crysatom") and _verdict(r)
        ]
        if verdicts:
            text = "; ".join(
                f"{emb} on {prop}{'' if f == 1.0 else f' @{f:g}'}: {v}"
                for prop, f, emb, v in verdicts
            )
            lines += [
                "CrysAtom against cgcnn (tie = gap within the seed std; lower/higher: one "
                f"model each, no seed spread to judge by): {text}.",
                "",
            ]
    return lines


def without_variants(frame: pd.DataFrame, cfg: BenchConfig) -> pd.DataFrame:
    """``frame`` without the rows of the curve's variants (transfer options, reported apart)."""
    variants = set(cfg.curve.get("variants") or {})
    if frame.empty or not variants:
        return frame
    return frame[~frame["embedding"].isin(variants)]


def write_report(run_dir: Path, cfg: BenchConfig, notes: dict[str, str]) -> Path:
    """Write ``summary.csv`` and ``results.md`` from ``results.csv`` (and ``probe/``)."""
    run_dir = Path(run_dir)
    frame = ResultsFile(run_dir / "results.csv").read()
    summary = summarize(frame)
    if not summary.empty:
        atomic_write_text(run_dir / "summary.csv", summary.to_csv(index=False, float_format="%.6g"))
    verdicts = verdict_table(
        without_variants(frame, cfg),
        cfg.curve.get("target", TARGET),
        cfg.curve.get("references", REFERENCES),
    )
    if not verdicts.empty:
        atomic_write_text(
            run_dir / "verdicts.csv", verdicts.to_csv(index=False, float_format="%.6g")
        )
    lines = [
        f"# Benchmark `{cfg.name}`",
        "",
        cfg.description.strip(),
        "",
        "Test MAE, mean ± standard deviation over model seeds; in brackets the change against "
        "the `cgcnn` input features (CGCNN's own element features, the 'vanilla' baseline) "
        "under the same protocol, in % (negative: lower error than cgcnn). Every embedding of a "
        "table is scored on the same test rows. Produced by `python -m training.benchmark`; "
        "the exact config is `config.yaml`, commit and hardware are in `run_info.json`, the "
        "rows per property in `data.json`.",
        "",
    ]
    if cfg.cgcnn:
        lines += [
            "CGCNN settings (identical for every embedding): "
            + ", ".join(f"{k}={v}" for k, v in sorted(cfg.cgcnn.items()))
            + f"; max_train={cfg.max_train}, max_val={cfg.max_val}, seeds={cfg.seeds}.",
            "",
        ]
    target = str(cfg.curve.get("target", TARGET))
    references = list(cfg.curve.get("references", REFERENCES))
    embeddings_only = without_variants(frame, cfg)
    lines += curve_markdown(embeddings_only, cfg.cgcnn.get("epochs"), target, references)
    candidates = list(cfg.curve.get("candidates", []))
    if candidates:
        table = candidate_selection(
            frame, run_dir, candidates, cfg.curve.get("select_sizes", (100, 300))
        )
        atomic_write_text(
            run_dir / "candidates.csv", table.to_csv(index=False, float_format="%.6g")
        )
        lines += [
            "### Choice of the shipped `crysatom` vectors (validation only)",
            "",
            "Validation MAE at the kept epoch divided by `cgcnn`'s in the same cell and seed, "
            "geometric mean over the cells every candidate has; the lowest wins.",
            "",
            "| candidate | cells | mean validation ratio | chosen |",
            "|---|---:|---:|---|",
            *[
                f"| {r.candidate} | {r.n_cells} | {r.mean_val_ratio:.4f} | {'yes' if r.chosen else ''} |"
                for r in table.itertuples()
            ],
            "",
        ]
    groups = transfer_groups(cfg.curve.get("transfer") or {})
    if groups:
        table = transfer_table(frame, run_dir, groups)
        if not table.empty:
            atomic_write_text(
                run_dir / "transfer.csv", table.to_csv(index=False, float_format="%.6g")
            )
            lines += transfer_markdown(table)
    other = (
        summary[~summary["experiment"].astype(str).str.startswith("curve")]
        if len(summary)
        else summary
    )
    if not other.empty:
        lines += markdown_tables(other)
    paper_rows = [p for p in cfg.properties if p.name in PAPER_MAE]
    if paper_rows and "comparison" in set(frame.get("experiment", [])):
        lines += [
            "### The paper's numbers (not ours: another protocol)",
            "",
            "CrysAtom paper, Tables 5 and 7: 1000 epochs on a GPU, all training data, split "
            "seed 123. Not comparable with the tables above unless the same protocol was run.",
            "",
            "| property | CGCNN vanilla (paper) | CGCNN + CrysAtom (paper) |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| {p.name} ({p.unit}) | {PAPER_MAE[p.name][0]} | {PAPER_MAE[p.name][1]} |"
            for p in paper_rows
        ]
        lines.append("")
    probe_md = run_dir / "probe" / "probe_summary.csv"
    if probe_md.exists():
        wide = pd.read_csv(probe_md)
        lines += [
            "### Experiment 6: element-property probe (cross-validated R², see probe/probe.md)",
            "",
            "| " + " | ".join(wide.columns) + " |",
            "|" + "---|" * len(wide.columns),
        ]
        for row in wide.itertuples(index=False):
            lines.append(
                "| "
                + " | ".join(
                    "–"
                    if (isinstance(v, float) and math.isnan(v))
                    else (f"{v:.3f}" if isinstance(v, float) else str(v))
                    for v in row
                )
                + " |"
            )
        lines.append("")
    if notes:
        lines += ["### Skipped or failed", ""]
        lines += [f"- {k}: {v}" for k, v in sorted(notes.items())]
        lines.append("")
    lines += [
        "The downstream crystals overlap with the unlabelled pretraining corpus of the CrysAtom "
        "vectors (JARVIS + MP structures), as in the paper; the targets are never used in "
        "pretraining.",
        "",
    ]
    path = run_dir / "results.md"
    atomic_write_text(path, "\n".join(lines))
    return path
