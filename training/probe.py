"""Element-property probe: how much chemistry can a regressor read off element vectors?

For one embedding, each target property of the elements is regressed on the element vectors
with cross-validation; the R² of the better of two models is reported per target, and the mean
over targets summarises the embedding.

Protocol
--------
* Targets (pymatgen ``Element`` data, raw values, no log transform):

  ===========================  ============================================  ====
  target                       pymatgen attribute                            unit
  ===========================  ============================================  ====
  ``atomic_radius``            ``Element.atomic_radius``                     Å
  ``boiling_point``            ``Element.boiling_point``                     K
  ``melting_point``            ``Element.melting_point``                     K
  ``first_ionization_energy``  ``Element.ionization_energies[0]``            eV
  ``electronegativity``        ``Element.X`` (Pauling)                       --
  ===========================  ============================================  ====

* Elements: by default :data:`COMMON_ELEMENTS`, the 86 elements H-Bi (Z 1-83) without the
  noble gases He, Ne and Ar, plus Ac, Th, Pa, U, Np and Pu. These are the elements covered by
  the SkipAtom vectors, and also by mat2vec, megnet16 and magpie, so every comparator is
  scored on the same set. Of these, only elements the embedding covers with finite vectors,
  and with a finite target value, are used (pymatgen has no radius for Kr and Xe and no
  boiling point for Pa, so those targets use 84 or 85 elements). ``elements="covered"`` uses
  every covered element instead.
* Models: ``ridge``, ridge regression on the raw vectors (``RidgeCV`` with alphas
  10^-4..10^5, chosen by leave-one-out inside each training fold), and ``random_forest``,
  ``RandomForestRegressor(n_estimators=200, random_state=0, n_jobs=1)``. The target's score is
  the better of the two.
* Supplementary model ``ridge_standardized`` (``StandardScaler`` then the same ``RidgeCV``):
  reported, but not part of the score. Standardising gives every vector component unit
  variance, so components that carry little variance (often noise in learned vectors) weigh as
  much as the dominant ones; on SkipAtom this lowers the mean R² from about 0.65 to 0.48. The
  raw-vector ridge is the protocol behind the reference values quoted in the project's
  quality gate (CGCNN one-hot ~0.70, SkipAtom ~0.65, random ~0).
* Scores: ``RepeatedKFold(n_splits=5, n_repeats=3, random_state=0)`` and scikit-learn's
  ``cross_val_score(scoring="r2")``; the score of a model is the mean R² over the 15 test
  folds.

The CrystalTransformer paper (Table VI) reports R² of 0.784 (radius), 0.864 (boiling
temperature), 0.856 (melting temperature), 0.831 (electrical conductivity, not probed here)
and 0.907 (first ionization energy) for its 128-dim embeddings with a CatBoost model, averaged
over seeds; its element set and splits are not stated, so the numbers are shown for orientation
only.

Command line::

    python -m training.probe --embeddings cgcnn skipatom random atom2vec crysatom:200 \\
        --out training/results/probe/
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pymatgen.core import Element
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import RepeatedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from crysatom_featurizers.chemistry import element_symbol
from crysatom_featurizers.embeddings import parse_spec, resolve
from crysatom_featurizers.io import atomic_write_text
from training.corpus import REPO_ROOT

#: The default probe element set: Z 1-83 without He, Ne, Ar, plus Ac, Th, Pa, U, Np, Pu (86).
COMMON_ELEMENTS: tuple[str, ...] = tuple(
    [element_symbol(z) for z in range(1, 84) if z not in (2, 10, 18)]
    + ["Ac", "Th", "Pa", "U", "Np", "Pu"]
)


def _first_ionization_energy(element: Element) -> float | None:
    energies = element.ionization_energies
    return energies[0] if energies else None


#: target name -> (value getter, unit)
TARGETS: dict[str, tuple[Callable[[Element], Any], str]] = {
    "atomic_radius": (lambda el: el.atomic_radius, "Å"),
    "boiling_point": (lambda el: el.boiling_point, "K"),
    "melting_point": (lambda el: el.melting_point, "K"),
    "first_ionization_energy": (_first_ionization_energy, "eV"),
    "electronegativity": (lambda el: el.X, "Pauling"),
}

#: CrystalTransformer paper, Table VI (CatBoost on its 128-dim embeddings); None: not reported.
CRYSTALTRANSFORMER_TABLE_VI: dict[str, float | None] = {
    "atomic_radius": 0.784,
    "boiling_point": 0.864,
    "melting_point": 0.856,
    "first_ionization_energy": 0.907,
    "electronegativity": None,
}
CRYSTALTRANSFORMER_CONDUCTIVITY = 0.831  # Table VI, electrical conductivity: not probed here

MODELS = ("ridge", "ridge_standardized", "random_forest")
#: Models whose better mean R² is the target's score; ``ridge_standardized`` is supplementary.
SCORED_MODELS = ("ridge", "random_forest")
RIDGE_ALPHAS = np.logspace(-4, 5, 19)


def element_target(symbol: str, target: str) -> float:
    """Value of ``target`` for an element, NaN where pymatgen has none."""
    getter, _ = TARGETS[target]
    with warnings.catch_warnings():
        # pymatgen warns (and returns NaN) for the electronegativity of noble gases.
        warnings.simplefilter("ignore")
        value = getter(Element(symbol))
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def target_table(elements: Sequence[str], targets: Sequence[str] | None = None) -> pd.DataFrame:
    """Target values (rows: elements, columns: targets; NaN where pymatgen has no value)."""
    targets = list(targets or TARGETS)
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        raise ValueError(f"unknown probe targets {unknown}; expected some of {list(TARGETS)}")
    data = {t: [element_target(s, t) for s in elements] for t in targets}
    return pd.DataFrame(data, index=pd.Index(list(elements), name="element"))


def _label(embedding: Any, resolved: Any) -> str:
    if isinstance(embedding, str):
        name, dim = parse_spec(embedding)
        # The requested dimension names the file; rank-capped vectors may be narrower.
        return f"{name}_{dim}" if dim is not None else name
    return str(getattr(resolved, "name", "embedding"))


def _make_model(model: str, n_estimators: int):
    if model == "ridge":
        return RidgeCV(alphas=RIDGE_ALPHAS)
    if model == "ridge_standardized":
        return make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
    if model == "random_forest":
        return RandomForestRegressor(n_estimators=n_estimators, random_state=0, n_jobs=1)
    raise ValueError(f"unknown probe model {model!r}; expected some of {list(MODELS)}")


def probe_embedding(
    embedding: Any,
    elements: Sequence[str] | str | None = None,
    n_repeats: int = 3,
    n_splits: int = 5,
    *,
    targets: Sequence[str] | None = None,
    models: Sequence[str] = MODELS,
    scored_models: Sequence[str] = SCORED_MODELS,
    n_estimators: int = 200,
    random_state: int = 0,
) -> pd.DataFrame:
    """Cross-validated R² of element properties regressed on an embedding's vectors.

    Parameters
    ----------
    embedding
        An ``ElementEmbedding``, or a registry spec such as ``"cgcnn"`` or ``"crysatom:200"``.
    elements
        Element symbols to probe on; default :data:`COMMON_ELEMENTS`; ``"covered"`` for every
        element the embedding covers. Elements the embedding lacks, or whose vector is not
        finite, are dropped (their number is reported in ``n_missing``).
    n_repeats, n_splits
        Repeated k-fold settings (``random_state`` seeds the fold assignment).
    targets
        Subset of :data:`TARGETS` (default: all five).
    models
        Models to run: some of ``("ridge", "ridge_standardized", "random_forest")``.
    scored_models
        Models among which the best mean R² is the target's score (``ridge`` and
        ``random_forest``); if none of them was run, all run models compete.
    n_estimators
        Trees in the random forest (200 in the standard protocol).
    random_state
        Seed of ``RepeatedKFold``.

    Returns
    -------
    pandas.DataFrame
        One row per target: ``target``, ``unit``, ``n_elements``, ``n_missing``,
        ``r2_<model>`` and ``r2_<model>_std`` (mean and standard deviation over folds) for each
        model, ``best_model`` and ``r2_best`` (the best of ``scored_models``). ``attrs`` holds ``mean_r2`` (mean of ``r2_best``
        over targets), ``embedding``, ``dim`` and ``elements``.
    """
    resolved = resolve(embedding, param="embedding")
    if elements is None:
        candidates = list(COMMON_ELEMENTS)
    elif isinstance(elements, str):
        if elements != "covered":
            raise ValueError(f"elements must be a list of symbols or 'covered', got {elements!r}")
        candidates = list(resolved.symbols)
    else:
        candidates = list(elements)
    used, vectors = [], []
    for symbol in candidates:
        if symbol in resolved:
            vector = np.asarray(resolved.vector(symbol), dtype=np.float64)
            if np.all(np.isfinite(vector)):
                used.append(symbol)
                vectors.append(vector)
    if len(used) < 2 * n_splits:
        raise ValueError(
            f"embedding {_label(embedding, resolved)!r} covers only {len(used)} of the "
            f"{len(candidates)} probe elements; need at least {2 * n_splits}"
        )
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise ValueError(f"unknown probe models {unknown}; expected some of {list(MODELS)}")
    competing = [m for m in models if m in scored_models] or list(models)
    features = np.vstack(vectors)
    table = target_table(used, targets)
    rows = []
    for target in table.columns:
        values = table[target].to_numpy()
        mask = np.isfinite(values)
        x, y = features[mask], values[mask]
        row: dict[str, Any] = {
            "target": target,
            "unit": TARGETS[target][1],
            "n_elements": int(mask.sum()),
            "n_missing": len(candidates) - int(mask.sum()),
        }
        best_model, best = None, -math.inf
        for model in models:
            folds = RepeatedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=random_state)
            scores = cross_val_score(
                _make_model(model, n_estimators), x, y, cv=folds, scoring="r2", n_jobs=1
            )
            row[f"r2_{model}"] = float(np.mean(scores))
            row[f"r2_{model}_std"] = float(np.std(scores))
            if model in competing and row[f"r2_{model}"] > best:
                best_model, best = model, row[f"r2_{model}"]
        row["best_model"] = best_model
        row["r2_best"] = best
        rows.append(row)
    result = pd.DataFrame(rows)
    result.attrs.update(
        {
            "embedding": _label(embedding, resolved),
            "dim": int(resolved.dim),
            "elements": used,
            "mean_r2": float(result["r2_best"].mean()),
        }
    )
    return result


def probe_table(
    names: Sequence[Any],
    elements: Sequence[str] | str | None = None,
    n_repeats: int = 3,
    n_splits: int = 5,
    **kwargs: Any,
) -> pd.DataFrame:
    """Probe several embeddings; long format, one row per (embedding, target).

    Parameters
    ----------
    names
        Embedding specs (``"cgcnn"``, ``"crysatom:200"``) or ``ElementEmbedding`` objects.
    elements, n_repeats, n_splits, kwargs
        Passed to :func:`probe_embedding`.

    Returns
    -------
    pandas.DataFrame
        The :func:`probe_embedding` rows with ``embedding`` and ``dim`` columns in front.
    """
    frames = []
    for name in names:
        result = probe_embedding(name, elements, n_repeats, n_splits, **kwargs)
        result.insert(0, "dim", result.attrs["dim"])
        result.insert(0, "embedding", result.attrs["embedding"])
        frames.append(result)
    return pd.concat(frames, ignore_index=True)


def summary_table(long: pd.DataFrame) -> pd.DataFrame:
    """Wide summary: rows are targets plus ``mean``, columns are embeddings (best R²), and a
    last column with the CrystalTransformer Table VI values (a different protocol)."""
    wide = long.pivot(index="target", columns="embedding", values="r2_best")
    order = [t for t in TARGETS if t in wide.index]
    wide = wide.loc[order, list(dict.fromkeys(long["embedding"]))]
    wide.loc["mean"] = wide.mean(axis=0)
    paper = [CRYSTALTRANSFORMER_TABLE_VI.get(t) for t in order]
    wide["CrystalTransformer Table VI (paper)"] = paper + [None]
    wide.columns.name = None
    wide.index.name = "target"
    return wide


def _markdown(long: pd.DataFrame, wide: pd.DataFrame, settings: dict[str, Any]) -> str:
    def fmt(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    header = "| target | " + " | ".join(wide.columns) + " |"
    lines = [header, "|" + "---|" * (len(wide.columns) + 1)]
    for target, row in wide.iterrows():
        label = f"**{target}**" if target == "mean" else target
        lines.append(f"| {label} | " + " | ".join(fmt(v) for v in row.to_list()) + " |")
    dims = long.drop_duplicates("embedding").set_index("embedding")["dim"]
    n_el = long.groupby("embedding", sort=False)["n_elements"].max()
    details = ["| embedding | dim | elements used (max over targets) |", "|---|---|---|"]
    details += [f"| {e} | {dims[e]} | {n_el[e]} |" for e in dims.index]
    models = long.pivot(index="target", columns="embedding", values="best_model")
    models = models.loc[[t for t in TARGETS if t in models.index], list(dims.index)]
    model_lines = ["| target | " + " | ".join(models.columns) + " |"]
    model_lines.append("|" + "---|" * (len(models.columns) + 1))
    for target, row in models.iterrows():
        model_lines.append(f"| {target} | " + " | ".join(row.to_list()) + " |")
    supplementary: list[str] = []
    if "r2_ridge_standardized" in long.columns and long["r2_ridge_standardized"].notna().any():
        std = long.pivot(index="target", columns="embedding", values="r2_ridge_standardized")
        std = std.loc[[t for t in TARGETS if t in std.index], list(dims.index)]
        std.loc["mean"] = std.mean(axis=0)
        supplementary = [
            "## Supplementary: ridge on standardised vectors",
            "",
            "Not part of the score (see `training/probe.py`): every component scaled to unit "
            "variance before RidgeCV.",
            "",
            "| target | " + " | ".join(std.columns) + " |",
            "|" + "---|" * (len(std.columns) + 1),
            *[
                f"| {t} | " + " | ".join(fmt(v) for v in row.to_list()) + " |"
                for t, row in std.iterrows()
            ],
            "",
        ]
    return "\n".join(
        [
            "# Element-property probe",
            "",
            "Cross-validated R² of element properties (pymatgen data, raw values) regressed on "
            "each embedding's element vectors: the better of ridge on the raw vectors "
            "(RidgeCV) and a 200-tree random forest, "
            f"{settings['n_splits']}-fold CV repeated {settings['n_repeats']} times "
            "(RepeatedKFold, random_state=0), mean of the per-fold R². "
            f"Elements: {settings['elements']}. Produced by `training/probe.py`; "
            "see its docstring for the full protocol.",
            "",
            *lines,
            "",
            "The last column is the CrystalTransformer paper's Table VI (CatBoost on its own "
            "128-dim embeddings, element set and splits not stated): for orientation only, "
            "not measured with this protocol. Its electrical-conductivity R² "
            f"({CRYSTALTRANSFORMER_CONDUCTIVITY}) has no counterpart here, and it reports no "
            "electronegativity probe.",
            "",
            "magpie's 22 features include tabulated element properties (melting point, "
            "covalent radius, electronegativity among them), so its scores partly measure "
            "overlap with the targets rather than learned chemistry.",
            "",
            "## Embeddings",
            "",
            *details,
            "",
            "## Better model per target",
            "",
            *model_lines,
            "",
            *supplementary,
            "## Run",
            "",
            *[f"- {k}: {v}" for k, v in settings.items()],
            "",
        ]
    )


def write_results(
    long: pd.DataFrame, out_dir: str | Path, settings: dict[str, Any], *, merge: bool = True
) -> list[Path]:
    """Write ``probe_long.csv``, ``probe_summary.csv`` and ``probe.md`` into ``out_dir``.

    With ``merge``, rows of embeddings already in an existing ``probe_long.csv`` and not probed
    now are kept, so embeddings can be added one run at a time.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    long_path = out / "probe_long.csv"
    if merge and long_path.exists():
        previous = pd.read_csv(long_path)
        previous = previous.loc[~previous["embedding"].isin(long["embedding"])]
        long = pd.concat([previous, long], ignore_index=True)
    wide = summary_table(long)
    atomic_write_text(long_path, long.to_csv(index=False, float_format="%.4f"))
    atomic_write_text(out / "probe_summary.csv", wide.to_csv(float_format="%.4f"))
    atomic_write_text(out / "probe.md", _markdown(long, wide, settings))
    return [long_path, out / "probe_summary.csv", out / "probe.md"]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m training.probe",
        description="Element-property probe of element embeddings (cross-validated R²).",
    )
    parser.add_argument(
        "--embeddings",
        nargs="+",
        default=["cgcnn", "skipatom", "mat2vec", "megnet16", "magpie", "random", "atom2vec"],
        help="registry names, optionally name:dim (e.g. crysatom:200)",
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "training" / "results" / "probe")
    parser.add_argument("--n-repeats", type=int, default=3)
    parser.add_argument("--n-splits", type=int, default=5)
    parser.add_argument(
        "--elements",
        default="common",
        help="'common' (the 86 COMMON_ELEMENTS), 'covered', or comma-separated symbols",
    )
    parser.add_argument("--no-merge", action="store_true", help="overwrite earlier rows")
    args = parser.parse_args(argv)
    if args.elements == "common":
        elements: Any = None
        elements_text = "the 86 COMMON_ELEMENTS covered by the embedding"
    elif args.elements == "covered":
        elements, elements_text = "covered", "every element the embedding covers"
    else:
        elements = [s.strip() for s in args.elements.split(",") if s.strip()]
        elements_text = ", ".join(elements)
    from threadpoolctl import threadpool_limits

    from training.atom2vec import _git_commit, hardware_record
    from training.provenance import package_version

    with threadpool_limits(limits=1):
        long = probe_table(args.embeddings, elements, args.n_repeats, args.n_splits)
    git = _git_commit()
    settings = {
        "n_splits": args.n_splits,
        "n_repeats": args.n_repeats,
        "elements": elements_text,
        "command": "python -m training.probe " + " ".join(sys.argv[1:] if argv is None else argv),
        "git commit": f"{git['git_commit']}{' (uncommitted changes)' if git['git_dirty'] else ''}",
        "package version": package_version(),
        "scikit-learn": __import__("sklearn").__version__,
        "pymatgen": __import__("pymatgen.core").core.__version__,
        "cpu": hardware_record()["cpu"],
        "date (UTC)": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
    }
    for path in write_results(long, args.out, settings, merge=not args.no_merge):
        print(path)
    print(summary_table(long).round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
