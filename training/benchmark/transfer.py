"""Transfer from the pretrained encoder on the learning curve: vanilla CGCNN, CrysAtom vectors,
fine-tuning and distillation, each option's setting chosen on validation, judged on test.

The ``curve.transfer`` section of a config names the labels of each option: ``vanilla`` and
``vectors`` (one label each), ``finetune``, ``distill`` and ``distill_vectors`` (a label per
setting, e.g. one per distillation weight delta). For every property and training size the
setting with the lowest mean validation MAE over seeds is chosen (never the test set), and its
test MAE is compared with vanilla's over paired seeds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from training.benchmark.curve import ALPHA, attach_validation, paired_verdict

#: Options of the report, in order, with their description.
OPTIONS = {
    "vanilla": "CGCNN on CGCNN's features (64 x 3)",
    "vectors": "CGCNN on CrysAtom vectors (final layer or the shipped read-out, on validation)",
    "finetune": "fine-tuned CrysAtom encoder (200 x 5, new head)",
    "distill": "CGCNN distilled from the CrysAtom encoder (delta on validation)",
    "distill_vectors": "CGCNN on CrysAtom vectors, distilled (delta on validation)",
}


def transfer_groups(section: Mapping[str, object]) -> dict[str, list[str]]:
    """Option -> candidate labels, from a config's ``curve.transfer`` section."""
    out: dict[str, list[str]] = {}
    for option in OPTIONS:
        value = section.get(option)
        if value is None:
            continue
        out[option] = [str(value)] if isinstance(value, str) else [str(v) for v in value]
    return out


def option_seeds(fits: pd.DataFrame, labels: Sequence[str]) -> set:
    """The seeds that every setting of an option has (all its seeds if they share none)."""
    sets = [set(fits.loc[fits["embedding"] == lab, "seed"]) for lab in labels]
    return set.intersection(*[s for s in sets if s] or [set()]) or set(fits["seed"])


def transfer_table(
    frame: pd.DataFrame, run_dir: Path, groups: Mapping[str, Sequence[str]]
) -> pd.DataFrame:
    """One row per property x training size x option: the setting chosen on validation, its
    test MAE (mean, std over seeds) and its paired comparison with ``vanilla``.

    Each option's settings compete on the seeds they all have (a failed fit drops its seed).
    Within a cell, every option is then scored on the seeds that all the options share, so the
    means and verdicts of one table compare alike when some embeddings were run with more
    seeds; with fewer than two shared seeds, each option keeps its own.
    """
    rows = attach_validation(frame, run_dir)
    rows = rows[rows["experiment"] == "curve"]
    vanilla = (groups.get("vanilla") or [None])[0]
    out = []
    for (prop, n), cell in rows.groupby(["property", "n_train"], sort=True):
        own = {
            option: option_seeds(cell[cell["embedding"].isin(labels)], labels)
            for option, labels in groups.items()
        }
        own = {option: seeds for option, seeds in own.items() if seeds}
        shared = set.intersection(*own.values()) if own else set()
        if len(shared) < 2:  # too few to pair: each option keeps its own seeds
            shared = set()
        for option, labels in groups.items():
            if option not in own:
                continue
            scored = shared or own[option]
            fits = cell[cell["embedding"].isin(labels) & cell["seed"].isin(scored)]
            by_label = fits.groupby("embedding")["val_mae"].mean()
            chosen = str(by_label.idxmin()) if by_label.notna().any() else str(by_label.index[0])
            sub = fits[fits["embedding"] == chosen]
            row = {
                "property": prop,
                "unit": sub["unit"].iloc[0] if "unit" in sub else "",
                "n_train": int(n),
                "option": option,
                "chosen": chosen,
                "settings_tried": len(by_label),
                "n_seeds": int(sub["seed"].nunique()),
                "val_mae_mean": float(sub["val_mae"].mean()),
                "mae_mean": float(sub["test_mae"].mean()),
                "mae_std": float(sub["test_mae"].std()) if len(sub) > 1 else math.nan,
                "epochs_median": float(sub["epochs_run"].median()),
                "fit_seconds_median": float(sub["fit_seconds"].median()),
            }
            base = cell[cell["embedding"] == vanilla]
            if shared:
                base = base[base["seed"].isin(shared)]
            if option != "vanilla" and len(base):
                verdict = paired_verdict(pd.concat([sub, base]), prop, int(n), chosen, vanilla)
                # the change of the means over the seeds both have (all seeds when one pair)
                seeds = sorted(set(sub["seed"]) & set(base["seed"])) or sorted(sub["seed"])
                ours = sub[sub["seed"].isin(seeds)]["test_mae"].mean()
                theirs = base[base["seed"].isin(seeds)]["test_mae"].mean()
                row.update(
                    rel_vs_vanilla_pct=100.0 * (ours - theirs) / theirs,
                    p_value=verdict["p_value"],
                    verdict=verdict["verdict"],
                )
            out.append(row)
    return pd.DataFrame(out)


def option_table(group: pd.DataFrame, options: Sequence[str], seeds: bool = False) -> list[str]:
    """Markdown rows of one property of a :func:`transfer_table`: an option per row, a
    training size per column; each cell the mean ± std test MAE (``seeds``: and the number of
    seeds), the change against vanilla with the verdict, and the setting chosen."""
    sizes = sorted(group["n_train"].unique())
    lines = ["| option | " + " | ".join(f"n = {n}" for n in sizes) + " |"]
    lines.append("|---|" + "---|" * len(sizes))
    for option in options:
        sub = group[group["option"] == option]
        if sub.empty:
            continue
        cells = []
        for n in sizes:
            match = sub[sub["n_train"] == n]
            if match.empty:
                cells.append("–")
                continue
            r = match.iloc[0]
            std = f" ± {r.mae_std:.3g}" if np.isfinite(r.mae_std) else ""
            text = f"{r.mae_mean:.3g}{std}" + (f" ({int(r.n_seeds)})" if seeds else "")
            rel = getattr(r, "rel_vs_vanilla_pct", math.nan)
            if option != "vanilla" and np.isfinite(rel):
                verdict = "" if r.verdict == "n/a" else f", {r.verdict}"
                text += f" ({rel:+.1f}%{verdict})"
            if r.settings_tried > 1:
                text += f" [{r.chosen}]"
            cells.append(text)
        lines.append(f"| {option} | " + " | ".join(cells) + " |")
    return lines


def transfer_markdown(table: pd.DataFrame, target_pct: float = -10.0) -> list[str]:
    """Markdown: test MAE per option and size, the change against vanilla, and the target."""
    if table.empty:
        return []
    lines = [
        "## Transfer from the pretrained encoder (test MAE, mean ± std over seeds)",
        "",
        "In brackets: the change of the mean test MAE against vanilla CGCNN, and the paired "
        f"verdict over seeds (two-sided paired t-test, p < {ALPHA}). Distillation's delta is "
        "chosen per property and size on the validation MAE (the chosen label is named). "
        "Every option of a cell is scored on the seeds all the options share, so where the "
        "embedding curves have more seeds their numbers can differ from this table's.",
        "",
    ]
    for prop, group in table.groupby("property", sort=False):
        lines += [f"### {prop} ({group['unit'].iloc[0]})", ""]
        lines += option_table(group, OPTIONS)
        lines.append("")
    best = best_transfer(table)
    if not best.empty:
        lines += [
            "### Target: the best transfer option at least 10% below vanilla",
            "",
            "Best of `finetune`, `distill` and `distill_vectors` per property and size, chosen "
            "on validation MAE like every setting; its test MAE change against vanilla:",
            "",
            "| n | " + " | ".join(sorted(best["property"].unique())) + " | properties at ≤ -10% |",
            "|---:|" + "---|" * (best["property"].nunique() + 1),
        ]
        for n, sub in best.groupby("n_train"):
            cells = []
            for prop in sorted(best["property"].unique()):
                match = sub[sub["property"] == prop]
                if match.empty:
                    cells.append("–")
                    continue
                r = match.iloc[0]
                cells.append(f"{r.rel_vs_vanilla_pct:+.1f}% ({r.option})")
            hits = int((sub["rel_vs_vanilla_pct"] <= target_pct).sum())
            lines.append(f"| {n} | " + " | ".join(cells) + f" | {hits} of {len(sub)} |")
        lines.append("")
    return lines


def best_transfer(table: pd.DataFrame) -> pd.DataFrame:
    """Per property and size, the transfer option with the lowest mean validation MAE."""
    if table.empty:
        return table
    transfer = table[table["option"].isin(["finetune", "distill", "distill_vectors"])]
    if transfer.empty:
        return transfer
    idx = transfer.groupby(["property", "n_train"])["val_mae_mean"].idxmin().dropna()
    return transfer.loc[idx.astype(int)].reset_index(drop=True)


def plot_transfer(
    table: pd.DataFrame,
    path: Path,
    dpi: int = 110,
    options: Sequence[str] = tuple(OPTIONS),
    title: str = "Transfer from the pretrained CrysAtom encoder, mean ± std over seeds",
) -> Path | None:
    """Test MAE against training size per option, one panel per property (log-log)."""
    if table.empty:
        return None
    import matplotlib.pyplot as plt

    from crysatom_featurizers.io import save_figure

    props = list(dict.fromkeys(table["property"]))
    fig, axes = plt.subplots(
        1, len(props), figsize=(4.2 * len(props), 4.0), layout="constrained", squeeze=False
    )
    colours = {
        "vanilla": "tab:blue",
        "vectors": "black",
        "finetune": "tab:red",
        "distill": "tab:orange",
        "distill_vectors": "tab:purple",
    }
    for ax, prop in zip(axes[0], props):
        group = table[table["property"] == prop]
        for k, option in enumerate(options):
            sub = group[group["option"] == option].sort_values("n_train")
            if sub.empty:
                continue
            ax.errorbar(
                sub["n_train"],
                sub["mae_mean"],
                yerr=sub["mae_std"].fillna(0.0),
                marker="o",
                capsize=3,
                color=colours.get(option, f"C{k + 4}"),
                linewidth=2.2 if option == "vanilla" else 1.3,
                label=option,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training crystals")
        ax.set_ylabel(f"test MAE ({group['unit'].iloc[0]})")
        ax.set_title(prop)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    save_figure(fig, path, dpi=dpi)
    plt.close(fig)
    return path
