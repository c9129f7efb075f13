"""Vectors and encoders learned from property labels on the learning curve: each option's
setting chosen on validation, judged on test, every cell marked *seen* or *unseen*.

The ``curve.label_report`` section of the config maps options to labels (a list: the setting
with the lowest mean validation MAE is chosen per property and size, as in
:mod:`training.benchmark.transfer`): ``vanilla`` (``cgcnn``), ``megnet16``, ``crysatom``, ``uae``
(the label-trained vector candidates), ``finetune`` and ``distill`` (from the label-trained
encoder). A property is *seen* when it was a training label of the vectors
(:data:`training.labels.SEEN_PROPERTIES`), *unseen* otherwise. The report checks the targets:

* unseen properties, n = 100 and 300: the best of ``uae``, ``finetune``, ``distill`` (chosen on
  validation) at most 0.90 x vanilla's test MAE;
* seen properties, n = 100: ``uae`` at most 0.85 x vanilla, and better than ``megnet16`` over
  paired seeds;
* all five properties, n = 100: the geometric mean of ``uae`` / vanilla at most 0.85;
* the matminer workflow: composition features from the shipped ``uae`` candidate + boosting at
  or below Magpie on at least 4 of 5 properties at n = 100 and n = 300.

The report also ranks the vector candidates of ``curve.label_candidates`` on validation, as
:mod:`training.ship_label_vectors` does when it ships one (a candidate trained after the
shipped choice shows whether the choice still stands).

``python -m training.benchmark.label_vectors --run training/results/bench_curve`` writes
``label_vectors.md``, ``label_vectors.csv`` and ``figures/label_vectors.png`` into the run.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from crysatom_featurizers.io import atomic_write_text
from training.benchmark.config import BenchConfig
from training.benchmark.curve import candidate_selection, paired_verdict
from training.benchmark.results import ResultsFile
from training.benchmark.transfer import option_table, transfer_table
from training.labels import SEEN_PROPERTIES

LABEL_OPTIONS = ("vanilla", "megnet16", "crysatom", "uae", "finetune", "distill")
TRANSFER_FROM_LABELS = ("uae", "finetune", "distill")


def label_groups(section: Mapping[str, object]) -> dict[str, list[str]]:
    """Option -> candidate labels, from a config's ``curve.label_report`` section."""
    out: dict[str, list[str]] = {}
    for option in LABEL_OPTIONS:
        value = section.get(option)
        if value:
            out[option] = [str(value)] if isinstance(value, str) else [str(v) for v in value]
    return out


def seen(prop: str) -> str:
    """``"seen"`` when ``prop`` was a training label of the label-trained vectors."""
    return "seen" if prop in SEEN_PROPERTIES else "unseen"


def label_table(frame: pd.DataFrame, run_dir: Path, groups: Mapping[str, Sequence[str]]):
    """:func:`training.benchmark.transfer.transfer_table` of the options, marked seen/unseen."""
    table = transfer_table(frame, run_dir, groups)
    if not table.empty:
        table["seen"] = [seen(p) for p in table["property"]]
    return table


def _ratio(table: pd.DataFrame, option: str, prop: str, n: int) -> float:
    match = table[(table["option"] == option) & (table["property"] == prop)]
    match = match[match["n_train"] == n]
    if match.empty or "rel_vs_vanilla_pct" not in match:
        return math.nan
    return 1.0 + float(match["rel_vs_vanilla_pct"].iloc[0]) / 100.0


def best_from_labels(table: pd.DataFrame, prop: str, n: int) -> pd.Series | None:
    """The option of :data:`TRANSFER_FROM_LABELS` with the lowest mean validation MAE."""
    cell = table[
        (table["property"] == prop)
        & (table["n_train"] == n)
        & table["option"].isin(TRANSFER_FROM_LABELS)
    ]
    if cell.empty:
        return None
    return cell.loc[cell["val_mae_mean"].idxmin()]


def target_checks(
    table: pd.DataFrame, frame: pd.DataFrame, groups: Mapping[str, Sequence[str]]
) -> list[dict]:
    """One row per target: what was measured, the threshold and whether it is met."""
    checks = []
    props = sorted(table["property"].unique()) if not table.empty else []
    for n in (100, 300):
        for prop in [p for p in props if seen(p) == "unseen"]:
            best = best_from_labels(table, prop, n)
            ratio = math.nan if best is None else 1.0 + best["rel_vs_vanilla_pct"] / 100.0
            checks.append(
                {
                    "target": f"unseen {prop}, n = {n}: best label option ≤ 0.90 x vanilla",
                    "measured": ratio,
                    "detail": None if best is None else f"{best['option']} ({best['chosen']})",
                    "met": bool(ratio <= 0.90),
                }
            )
    for prop in [p for p in props if seen(p) == "seen"]:
        ratio = _ratio(table, "uae", prop, 100)
        checks.append(
            {
                "target": f"seen {prop}, n = 100: uae ≤ 0.85 x vanilla",
                "measured": ratio,
                "detail": None,
                "met": bool(ratio <= 0.85),
            }
        )
        row = table[(table["option"] == "uae") & (table["property"] == prop)]
        row = row[row["n_train"] == 100]
        if not row.empty and "megnet16" in groups:
            chosen = str(row["chosen"].iloc[0])
            rows = frame[(frame["experiment"] == "curve") & (frame["property"] == prop)]
            verdict = paired_verdict(rows, prop, 100, chosen, groups["megnet16"][0])
            checks.append(
                {
                    "target": f"seen {prop}, n = 100: uae beats megnet16 (paired seeds)",
                    "measured": verdict["rel_diff_pct"] / 100.0 + 1.0,
                    "detail": f"{verdict['verdict']}, p = {verdict['p_value']:.3g}",
                    "met": verdict["verdict"] == "win",
                }
            )
    ratios = [_ratio(table, "uae", p, 100) for p in props]
    ratios = [r for r in ratios if np.isfinite(r)]
    if ratios:
        gmean = float(np.exp(np.mean(np.log(ratios))))
        checks.append(
            {
                "target": f"all {len(ratios)} properties, n = 100: geometric mean uae / vanilla "
                "≤ 0.85",
                "measured": gmean,
                "detail": None,
                "met": bool(gmean <= 0.85 and len(ratios) == 5),
            }
        )
    best = [best_from_labels(table, p, 100) for p in props]
    ratios = [1.0 + b["rel_vs_vanilla_pct"] / 100.0 for b in best if b is not None]
    ratios = [r for r in ratios if np.isfinite(r)]
    if ratios:
        gmean = float(np.exp(np.mean(np.log(ratios))))
        chosen = ", ".join(sorted({str(b["option"]) for b in best if b is not None}))
        checks.append(
            {
                "target": f"all {len(ratios)} properties, n = 100: geometric mean of the best "
                "label option (chosen on validation per property) / vanilla ≤ 0.85",
                "measured": gmean,
                "detail": chosen,
                "met": bool(gmean <= 0.85 and len(ratios) == 5),
            }
        )
    return checks


def matminer_comparison(
    frame: pd.DataFrame, candidate: str, reference: str = "magpie"
) -> pd.DataFrame:
    """Test MAE of composition features + boosting: ``candidate`` against ``reference``."""
    rows = frame[(frame["experiment"] == "curve_matminer")]
    rows = rows[rows["embedding"].isin([candidate, reference])]
    if rows.empty:
        return pd.DataFrame()
    table = rows.pivot_table(index=["property", "n_train"], columns="embedding", values="test_mae")
    if candidate not in table or reference not in table:
        return pd.DataFrame()
    table = table[[candidate, reference]].dropna().reset_index()
    table["ratio"] = table[candidate] / table[reference]
    table["seen"] = [seen(p) for p in table["property"]]
    return table


def _fmt(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:.3g}"


def ranked_candidates(
    frame: pd.DataFrame, run_dir: Path, labels: Sequence[str], sizes: Sequence[int]
) -> pd.DataFrame:
    """:func:`~training.benchmark.curve.candidate_selection` of the ``labels`` that have rows."""
    present = set(frame["embedding"])
    labels = [lab for lab in labels if lab in present]
    if not labels:
        return pd.DataFrame()
    return candidate_selection(frame, run_dir, labels, [int(n) for n in sizes])


def label_markdown(
    table: pd.DataFrame,
    checks: list[dict],
    matminer: pd.DataFrame,
    candidate: str,
    ranking: pd.DataFrame | None = None,
) -> list[str]:
    """The report: one table per property, the target checks, the matminer comparison and
    the validation ranking of the vector candidates."""
    lines = [
        "# Vectors and encoders learned from property labels",
        "",
        "Test MAE, mean ± std over the seeds every option of the cell shares; in brackets the "
        "change against vanilla CGCNN (`cgcnn` features) and the paired verdict. Options with "
        "several settings name the one chosen on validation. *seen*: the property was a "
        "training label of the vectors and encoder (with every benchmark validation and test "
        "formula removed); *unseen*: it never was.",
        "",
    ]
    for prop, group in table.groupby("property", sort=True) if not table.empty else ():
        lines += [f"## {prop} ({group['unit'].iloc[0]}), {seen(prop)}", ""]
        lines += option_table(group, LABEL_OPTIONS, seeds=True)
        lines.append("")
    lines += ["## Targets", "", "| target | measured | met |", "|---|---:|---|"]
    for c in checks:
        detail = f" ({c['detail']})" if c["detail"] else ""
        lines.append(
            f"| {c['target']} | {_fmt(c['measured'])}{detail} | {'yes' if c['met'] else 'no'} |"
        )
    lines.append("")
    if not matminer.empty:
        lines += [
            f"## matminer workflow: `{candidate}` composition features + boosting vs Magpie",
            "",
            "Test MAE (one deterministic fit per cell); ratio below 1: the new vectors win.",
            "",
            f"| property | n | {candidate} | magpie | ratio |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in matminer.itertuples(index=False):
            lines.append(
                f"| {r.property} ({r.seen}) | {r.n_train} | {_fmt(getattr(r, candidate))} | "
                f"{_fmt(r.magpie)} | {r.ratio:.3f} |"
            )
        for n, sub in matminer.groupby("n_train"):
            lines.append("")
            lines.append(
                f"n = {n}: at or below Magpie on {int((sub['ratio'] <= 1).sum())} of {len(sub)}."
            )
        lines.append("")
    if ranking is not None and not ranking.empty:
        lines += [
            "## Vector candidates, ranked on validation",
            "",
            "Validation MAE / `cgcnn`'s, geometric mean over the cells every candidate has "
            "(all cells of the candidate in the last column); the lowest is the choice.",
            "",
            "| candidate | shared cells | ratio, shared cells | ratio, all its cells | chosen |",
            "|---|---:|---:|---:|---|",
        ]
        for r in ranking.itertuples(index=False):
            lines.append(
                f"| {r.candidate} | {r.n_cells} | {r.mean_val_ratio:.3f} | "
                f"{r.mean_val_ratio_all_cells:.3f} | {'yes' if r.chosen else ''} |"
            )
        lines.append("")
    return lines


def plot_label_options(table: pd.DataFrame, path: Path, dpi: int = 110) -> Path | None:
    """Test MAE / vanilla per option and property at each size (bars), seen and unseen."""
    if table.empty or "rel_vs_vanilla_pct" not in table:
        return None
    import matplotlib.pyplot as plt

    from crysatom_featurizers.io import save_figure

    sizes = sorted(table["n_train"].unique())
    props = sorted(table["property"].unique(), key=lambda p: (seen(p) != "seen", p))
    options = [o for o in LABEL_OPTIONS if o != "vanilla" and o in set(table["option"])]
    fig, axes = plt.subplots(
        1, len(sizes), figsize=(5.0 * len(sizes), 4.0), layout="constrained", squeeze=False
    )
    width = 0.8 / max(1, len(options))
    for ax, n in zip(axes[0], sizes):
        for k, option in enumerate(options):
            values = []
            for prop in props:
                values.append(_ratio(table, option, prop, n))
            ax.bar(np.arange(len(props)) + k * width, values, width, label=option)
        ax.axhline(1.0, color="black", linewidth=1)
        ax.set_xticks(np.arange(len(props)) + 0.4 - width / 2)
        ax.set_xticklabels([f"{p}\n({seen(p)})" for p in props], fontsize=7)
        ax.set_ylabel("test MAE / vanilla CGCNN")
        ax.set_title(f"n = {n}")
        ax.legend(fontsize=7)
    fig.suptitle("Vectors and encoders learned from labels, against vanilla CGCNN")
    save_figure(fig, path, dpi=dpi)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.benchmark.label_vectors", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--run", default="training/results/bench_curve")
    parser.add_argument("--config", default="training/configs/bench_curve.yaml")
    args = parser.parse_args(argv)
    run_dir = Path(args.run)
    cfg = BenchConfig.from_yaml(args.config)
    groups = label_groups(cfg.curve.get("label_report") or {})
    if "vanilla" not in groups:
        parser.error("the config's curve.label_report needs a vanilla label")
    frame = ResultsFile(run_dir / "results.csv").read()
    table = label_table(frame, run_dir, groups)
    checks = target_checks(table, frame, groups)
    candidate = str(cfg.curve.get("label_report", {}).get("matminer", "uae"))
    matminer = matminer_comparison(frame, candidate)
    ranking = ranked_candidates(
        frame,
        run_dir,
        cfg.curve.get("label_candidates", []),
        cfg.curve.get("label_select_sizes", (100,)),
    )
    lines = label_markdown(table, checks, matminer, candidate, ranking)
    atomic_write_text(run_dir / "label_vectors.md", "\n".join(lines) + "\n")
    atomic_write_text(run_dir / "label_vectors.csv", table.to_csv(index=False, float_format="%.6g"))
    plot_label_options(table, run_dir / "figures" / "label_vectors.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
