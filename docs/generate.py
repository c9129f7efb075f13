"""Write the documentation's generated pages and the README's generated blocks from the
committed result files, so that no number in them is typed by hand.

    python docs/generate.py           # rewrite docs/_generated/*.md and the README blocks
    python docs/generate.py --check   # exit 1 (and say which) if any of them is out of date

Sources, all under ``training/results/``: ``bench_curve/label_vectors.csv`` (CGCNN on each kind
of vectors and the transfer options, each chosen on validation), ``bench_curve/
potentials_choices.csv`` (the best universal-potential option, chosen on validation),
``bench_curve/results.csv`` (Magpie + boosting, the fit times), ``bench_full/full_data.csv``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CURVE = ROOT / "training" / "results" / "bench_curve"
FULL = ROOT / "training" / "results" / "bench_full"
OUT = ROOT / "docs" / "_generated"
README = ROOT / "README.md"

PROPERTIES = {
    "formation_energy_peratom": "JARVIS formation energy",
    "mbj_bandgap": "JARVIS band gap (MBJ)",
    "bulk_modulus_kv": "JARVIS bulk modulus",
    "shear_modulus_gv": "JARVIS shear modulus",
    "formation_energy_per_atom": "MP formation energy",
}
MODULI = ("bulk_modulus_kv", "shear_modulus_gv")
#: Leak class of the label-trained ``uae`` and of the potentials, per property.
UAE_LEAK = {p: ("unseen" if p in MODULI else "seen") for p in PROPERTIES}
POTENTIAL_LEAK = {
    "formation_energy_per_atom": "seen",
    "formation_energy_peratom": "related",
    "mbj_bandgap": "unseen",
    "bulk_modulus_kv": "unseen",
    "shear_modulus_gv": "unseen",
}


def _ratio(value: float) -> str:
    return f"{value:.2f}×" if np.isfinite(value) else "–"


def _range(values: list[float]) -> str:
    values = [v for v in values if np.isfinite(v)]
    if not values:
        return "–"
    low, high = min(values), max(values)
    return f"{low:.2f}×" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}–{high:.2f}×"


def curve_cells() -> pd.DataFrame:
    """One row per property and training size: CGCNN's test MAE on ``cgcnn`` features, and
    the test MAE of each option over it (each option's setting chosen on validation)."""
    label = pd.read_csv(CURVE / "label_vectors.csv")
    pivot = label.pivot_table(index=["property", "n_train"], columns="option", values="mae_mean")
    cells = pd.DataFrame({"cgcnn_mae": pivot["vanilla"]})
    for option in ("crysatom", "megnet16", "uae", "finetune", "distill"):
        if option in pivot:
            cells[option] = pivot[option] / pivot["vanilla"]
    chosen = pd.read_csv(CURVE / "potentials_choices.csv")
    best = chosen[chosen["model"] == "best"].set_index(["property", "n_train"])
    cells["potential"] = best["test_mae"] / cells["cgcnn_mae"]
    cells["potential_how"] = (
        best["chosen_model"].astype(str)
        + " + "
        + best["chosen_head"].astype(str)
        + " ("
        + best["feature_set"].astype(str)
        + ")"
    )
    results = pd.read_csv(CURVE / "results.csv")
    magpie = results[
        (results["experiment"] == "curve_matminer") & (results["embedding"] == "magpie")
    ]
    magpie = magpie.groupby(["property", "n_train"])["test_mae"].mean()
    cells["magpie"] = magpie / cells["cgcnn_mae"]
    units = label.groupby("property")["unit"].first()
    cells = cells.reset_index()
    cells["unit"] = cells["property"].map(units)
    return cells


def which_features(cells: pd.DataFrame) -> str:
    """The table behind "Which features should I use?"."""
    lines = [
        "Test MAE of each option divided by that of CGCNN on CGCNN's own `cgcnn` features, on "
        "the learning curve's rows (the same training prefixes, the same 500 validation "
        "crystals, the whole test split; mean over 5 seeds at n ≤ 300 and 3 at n = 1,000). "
        "Each option's setting is chosen on validation. Below 1 is better. In brackets, what "
        "the option's pretraining saw of the property: *seen* (its labels trained the "
        "vectors or the potential; the benchmark's validation and test formulas were removed "
        "from the label-trained vectors' data), *related*, or *unseen*.",
        "",
        "| property | n | CGCNN on `cgcnn` (test MAE) | CrysAtom vectors | `megnet16` | `uae` "
        "vectors | `uae` fine-tuned | best universal-potential option | Magpie + boosting |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for prop in PROPERTIES:
        for _, r in cells[cells["property"] == prop].sort_values("n_train").iterrows():
            leak = UAE_LEAK[prop]
            lines.append(
                f"| {PROPERTIES[prop]} | {int(r['n_train']):,} | {r['cgcnn_mae']:.3g} {r['unit']} "
                f"| {_ratio(r.get('crysatom', math.nan))} | {_ratio(r.get('megnet16', math.nan))} "
                f"| {_ratio(r.get('uae', math.nan))} ({leak}) "
                f"| {_ratio(r.get('finetune', math.nan))} ({leak}) "
                f"| {_ratio(r['potential'])} ({POTENTIAL_LEAK[prop]}; {r['potential_how']}) "
                f"| {_ratio(r['magpie'])} |"
            )
    return "\n".join(lines) + "\n"


def evidence(cells: pd.DataFrame) -> str:
    """The README's three sentences on what the evidence says."""

    def at(option: str, props: tuple[str, ...], n: int) -> list[float]:
        sub = cells[cells["property"].isin(props) & (cells["n_train"] == n)]
        return [float(v) for v in sub[option]]

    all_props = tuple(PROPERTIES)
    crysatom = [float(v) for v in cells["crysatom"]]
    uae_moduli = at("uae", MODULI, 100) + at("finetune", MODULI, 100)
    gap = at("potential", ("mbj_bandgap",), 100)
    shear = at("potential", ("shear_modulus_gv",), 100)
    full = pd.read_csv(FULL / "full_data.csv")
    full = full.groupby("embedding")["test_mae"].mean()
    full_text = ""
    if {"crysatom_authors_200", "cgcnn"} <= set(full.index):
        full_text = (
            f", and on the full JARVIS formation-energy data the CrysAtom authors' vectors give "
            f"{full['crysatom_authors_200']:.4f} eV/atom against {full['cgcnn']:.4f} (one seed): "
            "the paper's full-data gain does not reproduce"
        )
    return (
        "Trained to convergence on 100 to 1,000 crystals, CGCNN on label-free element vectors "
        f"(CrysAtom's) gives {_range(crysatom)} the test MAE of CGCNN's own features across "
        f"5 properties{full_text}. "
        "Knowledge learned from labels pays: the leak-free `uae` vectors and encoder give "
        f"{_range(uae_moduli)} CGCNN's error on the never-seen moduli at 100 crystals. "
        "Universal interatomic potentials go further on properties nobody labelled: the best "
        f"option built on their frozen knowledge, chosen on validation, gives {_range(gap)} on "
        f"the band gap and {_range(shear)} on the shear modulus at 100 crystals, over "
        f"{len(all_props)} properties.\n"
    )


def reproduction() -> str:
    """Each result: the command that makes it, its compute and the page that shows it."""
    results = pd.read_csv(CURVE / "results.csv")
    hours = results.groupby("experiment")["fit_seconds"].sum() / 3600
    potentials = pd.read_csv(CURVE / "potentials.csv")
    cost = json.loads((CURVE / "potentials_cost.json").read_text())
    full = pd.read_csv(FULL / "full_data.csv")
    curve_cmd = (
        "python -m training.benchmark --config training/configs/bench_curve.yaml --resume "
        "--experiments curve"
    )
    rows = [
        (
            "Learning curves: CGCNN on every embedding and transfer option",
            curve_cmd,
            f"{hours.get('curve', 0):.1f} h of fits (one thread each)",
            "results/learning_curves",
        ),
        (
            "Composition features + boosting on the curve",
            "python -m training.benchmark --config training/configs/bench_curve.yaml --resume "
            "--experiments curve_matminer",
            f"{hours.get('curve_matminer', 0):.2f} h",
            "results/learning_curves",
        ),
        (
            "Vectors and encoders learned from labels",
            "python -m training.benchmark --report labels",
            "report only (reads the curve's fits)",
            "results/label_vectors",
        ),
        (
            "Universal-potential features",
            "python -m training.benchmark.potentials featurize; python -m "
            "training.benchmark.potentials fit; " + curve_cmd + " --embeddings chgnet_sites,"
            "chgnet_sites_cgcnn,distill_chgnet_d0.5; python -m training.benchmark --report "
            "potentials",
            f"featurizing: up to {max(sum(v.values()) for v in cost.values()) * 1000 / 60:.0f} "
            f"min per 1,000 crystals (every feature group); heads: "
            f"{potentials['fit_seconds'].sum() / 3600:.1f} h",
            "results/potentials",
        ),
        (
            "ALIGNN against CGCNN",
            "python -m training.benchmark --report alignn",
            "report only (reads the curve's fits)",
            "results/alignn",
        ),
        (
            "Full data",
            "python -m training.benchmark --config training/configs/bench_full.yaml --resume; "
            "python -m training.benchmark --report full",
            f"{full['hours'].sum():.1f} h of fits",
            "results/full_data",
        ),
    ]
    lines = [
        "| result | command | compute (2-core CPU machine) | page |",
        "|---|---|---|---|",
    ]
    for what, cmd, compute, page in rows:
        lines.append(f"| {what} | `{cmd}` | {compute} | [{page}]({page}.md) |")
    return "\n".join(lines) + "\n"


def readme_table(cells: pd.DataFrame) -> str:
    """The README's short "which features" table: n = 100 and 1,000."""
    lines = [
        "| property | n | `uae` fine-tuned | best universal-potential option | Magpie + boosting |",
        "|---|---:|---:|---:|---:|",
    ]
    for prop in PROPERTIES:
        for n in (100, 1000):
            r = cells[(cells["property"] == prop) & (cells["n_train"] == n)]
            if r.empty:
                continue
            r = r.iloc[0]
            lines.append(
                f"| {PROPERTIES[prop]} | {n:,} | {_ratio(r['finetune'])} ({UAE_LEAK[prop]}) | "
                f"{_ratio(r['potential'])} ({POTENTIAL_LEAK[prop]}) | {_ratio(r['magpie'])} |"
            )
    return "\n".join(lines) + "\n"


def registry() -> str:
    """Every table of the embedding registry: dimensions, source, license and leak class."""
    from crysatom_featurizers.embeddings import available

    def cell(value: object) -> str:
        return str(value).replace("|", "/").replace("\n", " ")

    table = available()
    lines = [
        "| name | dimensions (default) | source | license | what its data saw of the benchmark "
        "properties |",
        "|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        dims = ", ".join(str(d) for d in r["dims"]) if r["dims"] else "any"
        lines.append(
            f"| `{r['name']}` | {dims} ({r['default_dim']}) | {cell(r['source'])} | "
            f"{cell(r['license'])} | {cell(r['leak'])} |"
        )
    return "\n".join(lines) + "\n"


def outputs() -> dict[Path, str]:
    cells = curve_cells()
    return {
        OUT / "registry.md": registry(),
        OUT / "which_features.md": which_features(cells),
        OUT / "evidence.md": evidence(cells),
        OUT / "reproduction.md": reproduction(),
        OUT / "readme_table.md": readme_table(cells),
    }


def with_blocks(text: str, blocks: dict[str, str]) -> str:
    """``text`` with each ``<!-- generated:NAME -->`` ... ``<!-- /generated:NAME -->`` block
    holding ``blocks[NAME]``."""
    for name, body in blocks.items():
        pattern = re.compile(
            rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)", re.DOTALL
        )
        if not pattern.search(text):
            raise ValueError(f"README.md has no generated:{name} block")
        text = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python docs/generate.py", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check; write nothing")
    args = parser.parse_args(argv)
    files = outputs()
    readme = README.read_text()
    files[README] = with_blocks(
        readme,
        {"evidence": files[OUT / "evidence.md"], "which": files[OUT / "readme_table.md"]},
    )
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for path in stale:
            print(f"out of date: {path.relative_to(ROOT)} (run python docs/generate.py)")
        return 1 if stale else 0
    OUT.mkdir(exist_ok=True)
    for path in stale:
        path.write_text(files[path])
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
