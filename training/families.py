"""Do the vectors group chemical families together? (the CrysAtom paper's Figure 5, in numbers).

For each family (alkali metals, alkaline earths, halogens, chalcogens, noble gases,
lanthanides) and each embedding, two numbers on the L2-normalised vectors:

- ``intra``: the mean cosine similarity between members of the family, to be compared with
  ``overall``, the mean cosine similarity over all pairs of covered elements;
- ``nn``: nearest-neighbour purity, the fraction of members whose most similar other element
  (over all covered elements) belongs to the same family.

``python -m training.families --embeddings crysatom:200 cgcnn skipatom random --out DIR``
writes ``families.csv`` and ``families.md``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from crysatom_featurizers.embeddings import parse_spec
from crysatom_featurizers.io import atomic_write_text

FAMILIES: dict[str, tuple[str, ...]] = {
    "alkali metals": ("Li", "Na", "K", "Rb", "Cs"),
    "alkaline earths": ("Be", "Mg", "Ca", "Sr", "Ba"),
    "halogens": ("F", "Cl", "Br", "I"),
    "chalcogens": ("O", "S", "Se", "Te"),
    "noble gases": ("He", "Ne", "Ar", "Kr", "Xe"),
    "lanthanides": tuple(
        "La Ce Pr Nd Sm Eu Gd Tb Dy Ho Er Tm Yb Lu".split()
    ),  # Pm is rare in crystal databases and left out
}


def family_cohesion(embedding) -> pd.DataFrame:
    """Intra-family cosine similarity and nearest-neighbour purity of one embedding.

    Parameters
    ----------
    embedding : ElementEmbedding
        Vectors to score.

    Returns
    -------
    pandas.DataFrame
        One row per family with columns ``n`` (members covered), ``intra``, ``overall`` and
        ``nn``; NaN where fewer than two members are covered.
    """
    vectors = np.asarray(embedding.vectors, dtype=np.float64)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sim = unit @ unit.T
    np.fill_diagonal(sim, np.nan)
    overall = float(np.nanmean(sim))
    index = {s: i for i, s in enumerate(embedding.symbols)}
    rows = []
    for family, members in FAMILIES.items():
        ids = [index[m] for m in members if m in index]
        row = {"family": family, "n": len(ids), "overall": overall}
        if len(ids) >= 2:
            row["intra"] = float(np.nanmean(sim[np.ix_(ids, ids)]))
            nearest = np.nanargmax(sim[ids], axis=1)
            row["nn"] = float(np.isin(nearest, ids).mean())
        else:
            row["intra"] = row["nn"] = float("nan")
        rows.append(row)
    return pd.DataFrame(rows).set_index("family")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    from crysatom_featurizers.embeddings import load

    parser = argparse.ArgumentParser(prog="python -m training.families", description=__doc__)
    parser.add_argument("--embeddings", nargs="+", default=["crysatom:200", "cgcnn", "random"])
    parser.add_argument("--out", type=Path, default=Path("training/results/probe"))
    args = parser.parse_args(argv)
    frames = []
    for spec in args.embeddings:
        name, dim = parse_spec(spec)
        table = family_cohesion(load(name, dim=dim))
        frames.append(table.assign(embedding=spec.replace(":", "_")).reset_index())
    long = pd.concat(frames, ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "families.csv", long.to_csv(index=False))
    cell = long.assign(
        cell=[f"{i:.2f} / {o:.2f} / {p:.2f}" for i, o, p in zip(long.intra, long.overall, long.nn)]
    ).pivot(index="family", columns="embedding", values="cell")
    cell = cell[[s.replace(":", "_") for s in args.embeddings]].loc[list(FAMILIES)]
    lines = [
        "# Chemical families in the element vectors",
        "",
        "Each cell: mean cosine similarity within the family / mean over all element pairs / "
        "nearest-neighbour purity (fraction of members whose most similar element is in the "
        "family). Produced by `python -m training.families`.",
        "",
        "| family | " + " | ".join(cell.columns) + " |",
        "|---|" + "---|" * len(cell.columns),
    ]
    lines += [f"| {fam} | " + " | ".join(row) + " |" for fam, row in cell.iterrows()]
    atomic_write_text(args.out / "families.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
