"""Heads on frozen universal-potential features, chosen on validation, scored once on test.

For every model, property and curve size, each head (ridge, boosting, MLP) tries each feature
set and hyperparameter; the lowest validation MAE (mean over seeds for the MLP) is its choice,
and the head with the lowest validation MAE is the *best potential option* of the cell. Every
candidate's validation and test MAE goes to ``potentials.csv``; ``potentials.md`` reads the
choices against CGCNN (``cgcnn`` vectors), ``uae`` (vectors and fine-tuning), ``megnet16`` and
Magpie + boosting on the same rows, with each cell's leak class.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from crysatom_featurizers.io import atomic_write_text
from training.benchmark.config import resolve_path
from training.benchmark.potentials import (
    LEAK,
    MODULI,
    RUN_DIR,
    bench,
    load_features,
    property_rows,
)

LOG = logging.getLogger(__name__)

SIZES = (100, 300, 1000)
PROPERTIES = (
    "formation_energy_peratom",
    "mbj_bandgap",
    "bulk_modulus_kv",
    "shear_modulus_gv",
    "formation_energy_per_atom",
)
UNITS = {
    "formation_energy_peratom": "eV/atom",
    "mbj_bandgap": "eV",
    "bulk_modulus_kv": "GPa",
    "shear_modulus_gv": "GPa",
    "formation_energy_per_atom": "eV/atom",
}
LATENT = ("site_stats", "crystal")
PHYSICS = ("state", "magmom", "bulk_modulus", "elastic")
#: Feature sets: the latent vectors, the predictions (alone and with the element fractions of
#: the composition, which let a linear head learn elemental reference energies), both, and
#: both with the fractions.
FEATURE_SETS = {
    "latent": LATENT,
    "physics": PHYSICS,
    "physics+fractions": PHYSICS + ("fractions",),
    "latent+physics": LATENT + PHYSICS,
    "latent+physics+fractions": LATENT + PHYSICS + ("fractions",),
}
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-2, 4, 13))
HGB_GRID = [{"learning_rate": lr, "max_leaf_nodes": 15} for lr in (0.05, 0.1)]
MLP_GRID = [{"alpha": a} for a in (0.1, 1.0, 10.0)]
MLP_HIDDEN = (128,)
MLP_CHUNK = 25  # L-BFGS iterations between validation checks
MLP_PATIENCE = 3  # chunks without a better validation MAE
MLP_MAX_CHUNKS = 16
#: The feature sets boosting and the MLP try (ridge, cheap, tries all of FEATURE_SETS).
RICH_SETS = ("latent+physics", "latent+physics+fractions")


def seeds_for(size: int) -> list[int]:
    """The curve's seeds: 5 at n <= 300, 3 at 1,000."""
    return [0, 1, 2, 3, 4] if size <= 300 else [0, 1, 2]


def element_fractions(structures: Sequence[Any]) -> np.ndarray:
    """Atomic fraction of each element Z = 1..103 in each structure (shape (n, 103))."""
    out = np.zeros((len(structures), 103))
    for row, structure in enumerate(structures):
        for element, fraction in structure.composition.fractional_composition.items():
            z = int(getattr(element, "Z", 0))
            if 1 <= z <= 103:
                out[row, z - 1] += float(fraction)
    return out


def _matrix(features: pd.DataFrame, groups: Sequence[str]) -> np.ndarray | None:
    present = [g for g in groups if g in features.columns.get_level_values(0)]
    if not present:
        return None
    return features[present].to_numpy(dtype=np.float64)


class _Imputer:
    """Column means of the training rows in place of NaN (crystals the potential failed on)."""

    def fit(self, x: np.ndarray) -> _Imputer:
        means = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0)
        self.means_ = np.where(np.isfinite(means), means, 0.0)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = np.array(x, dtype=np.float64)
        bad = ~np.isfinite(x)
        x[bad] = np.take(self.means_, np.nonzero(bad)[1])
        return x


def _ridge(x_tr, y_tr, x_va, x_te, params, seed):
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_tr)
    model = Ridge(alpha=params["alpha"]).fit(scaler.transform(x_tr), y_tr)
    return tuple(model.predict(scaler.transform(x)) for x in (x_tr, x_va, x_te)) + ({},)


def _hgb(x_tr, y_tr, x_va, x_te, params, seed):
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(
        max_iter=300, early_stopping=False, random_state=seed, **params
    ).fit(x_tr, y_tr)
    return model.predict(x_tr), model.predict(x_va), model.predict(x_te), {}


def _mlp(x_tr, y_tr, x_va, x_te, params, seed, y_va=None):
    """One hidden layer trained full-batch by L-BFGS, in chunks of ``MLP_CHUNK`` iterations,
    stopped early on the fixed validation crystals (the best chunk's weights are kept)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_tr)
    xs_tr, xs_va, xs_te = (scaler.transform(x) for x in (x_tr, x_va, x_te))
    y_mean, y_std = float(np.mean(y_tr)), float(np.std(y_tr)) or 1.0
    model = MLPRegressor(
        hidden_layer_sizes=MLP_HIDDEN,
        alpha=params["alpha"],
        solver="lbfgs",
        max_iter=MLP_CHUNK,
        warm_start=True,
        random_state=seed,
    )
    best, best_state, best_chunk, chunk = np.inf, None, 0, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for chunk in range(1, MLP_MAX_CHUNKS + 1):
            model.fit(xs_tr, (y_tr - y_mean) / y_std)
            mae = float(np.mean(np.abs(model.predict(xs_va) * y_std + y_mean - y_va)))
            if mae < best:
                best, best_chunk = mae, chunk
                best_state = (copy.deepcopy(model.coefs_), copy.deepcopy(model.intercepts_))
            elif chunk - best_chunk >= MLP_PATIENCE:
                break
    model.coefs_, model.intercepts_ = best_state
    return (
        model.predict(xs_tr) * y_std + y_mean,
        model.predict(xs_va) * y_std + y_mean,
        model.predict(xs_te) * y_std + y_mean,
        {"best_epoch": best_chunk * MLP_CHUNK, "epochs_run": chunk * MLP_CHUNK},
    )


HEADS = {
    "ridge": (_ridge, [{"alpha": a} for a in RIDGE_ALPHAS], False),
    "hgb": (_hgb, HGB_GRID, False),
    "mlp": (_mlp, MLP_GRID, True),
}


def fit_cell(
    model: str, prop: str, features: pd.DataFrame, rows: dict[str, list], targets: dict
) -> list[dict[str, Any]]:
    """Every candidate (head, feature set, hyperparameters, seed) at every size."""
    out = []
    y_va, y_te = targets["val"], targets["test"]
    for size in SIZES:
        train = rows["train"][:size]
        y_tr = targets["train"][:size]
        for set_name, groups in FEATURE_SETS.items():
            x_all = _matrix(features, groups)
            if x_all is None:
                continue
            frame = pd.DataFrame(x_all, index=features.index)
            x_tr = frame.loc[train].to_numpy()
            imputer = _Imputer().fit(x_tr)
            x_tr = imputer.transform(x_tr)
            x_va = imputer.transform(frame.loc[rows["val"]].to_numpy())
            x_te = imputer.transform(frame.loc[rows["test"]].to_numpy())
            keep = np.std(x_tr, axis=0) > 0
            x_tr, x_va, x_te = x_tr[:, keep], x_va[:, keep], x_te[:, keep]
            for head, (fn, grid, seeded) in HEADS.items():
                if head != "ridge" and set_name not in RICH_SETS:
                    continue
                for params in grid:
                    for seed in seeds_for(size) if seeded else [0]:
                        t0 = time.perf_counter()
                        extra_kw = {"y_va": y_va} if head == "mlp" else {}
                        with threadpool_limits(limits=1):  # one core, as every curve fit
                            p_tr, p_va, p_te, info = fn(
                                x_tr, y_tr, x_va, x_te, params, seed, **extra_kw
                            )
                        out.append(
                            {
                                "model": model,
                                "property": prop,
                                "unit": UNITS[prop],
                                "leak": LEAK[prop],
                                "n_train": size,
                                "head": head,
                                "feature_set": set_name,
                                "n_features": int(x_tr.shape[1]),
                                "params": json.dumps(params, sort_keys=True),
                                "seed": seed,
                                "train_mae": float(np.mean(np.abs(p_tr - y_tr))),
                                "val_mae": float(np.mean(np.abs(p_va - y_va))),
                                "test_mae": float(np.mean(np.abs(p_te - y_te))),
                                "fit_seconds": time.perf_counter() - t0,
                                **info,
                            }
                        )
        LOG.info("%s %s n=%d: %d candidates", model, prop, size, len(out))
    return out


def zero_shot(model: str, prop: str, features: pd.DataFrame, rows, targets) -> list[dict]:
    """The potential's own moduli, no training: MAE on the test crystals it could evaluate."""
    out = []
    if prop not in MODULI:
        return out
    columns = {
        "bulk_modulus_kv": [("bulk_modulus", 0, "K, +/-2% volume"), ("elastic", 0, "Voigt K")],
        "shear_modulus_gv": [("elastic", 1, "Voigt G")],
    }[prop]
    for group, column, name in columns:
        if group not in features.columns.get_level_values(0):
            continue
        for part in ("val", "test"):
            pred = features[group].loc[rows[part]].to_numpy()[:, column]
            ok = np.isfinite(pred)
            out.append(
                {
                    "model": model,
                    "property": prop,
                    "estimate": name,
                    "part": part,
                    "n": int(ok.sum()),
                    "n_failed": int((~ok).sum()),
                    "mae": float(np.mean(np.abs(pred[ok] - targets[part][ok]))),
                    "pearson_r": float(np.corrcoef(pred[ok], targets[part][ok])[0, 1]),
                }
            )
    return out


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` for the block (POSIX ``flock``)."""
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_fits(models: Sequence[str], properties: Sequence[str] = PROPERTIES) -> None:
    """Fit every cell whose features exist and that ``potentials.csv`` lacks; then report.

    Cells are appended to the run's CSVs one (model, property) at a time, so a stopped run
    loses at most one cell and a second process may fit other properties.
    """
    b = bench()
    run_dir = resolve_path(RUN_DIR)
    paths = {
        "candidates": run_dir / "potentials.csv",
        "zero": run_dir / "potentials_zero_shot.csv",
    }
    cost_path = run_dir / "potentials_cost.json"
    for model in models:
        for prop in properties:
            done = pd.read_csv(paths["candidates"]) if paths["candidates"].exists() else None
            if done is not None and ((done["model"] == model) & (done["property"] == prop)).any():
                LOG.info("%s %s: fitted already", model, prop)
                continue
            try:
                features, meta = load_features(model, prop)
            except FileNotFoundError:
                LOG.info("%s %s: no features yet, skipped", model, prop)
                continue
            spec = next(p for p in b.cfg.properties if p.name == prop)
            rows = property_rows(b, prop)
            frame = b.dataset(spec.dataset)
            fractions = element_fractions(list(frame.loc[features.index, "structure"]))
            features = pd.concat(
                [
                    features,
                    pd.DataFrame(
                        fractions,
                        index=features.index,
                        columns=pd.MultiIndex.from_product([["fractions"], range(103)]),
                    ),
                ],
                axis=1,
            )
            targets = {part: b.targets(spec, ids) for part, ids in rows.items()}
            new = {
                "candidates": pd.DataFrame(fit_cell(model, prop, features, rows, targets)),
                "zero": pd.DataFrame(zero_shot(model, prop, features, rows, targets)),
            }
            with _locked(run_dir / ".potentials.lock"):  # other processes append too
                for key, table in new.items():
                    if table.empty:
                        continue
                    if paths[key].exists() and paths[key].stat().st_size > 1:
                        table = pd.concat([pd.read_csv(paths[key]), table], ignore_index=True)
                    atomic_write_text(paths[key], table.to_csv(index=False))
                costs = json.loads(cost_path.read_text()) if cost_path.exists() else {}
                costs[f"{model}/{prop}"] = meta["seconds_per_crystal"]
                atomic_write_text(cost_path, json.dumps(costs, indent=1, sort_keys=True))
    from training.benchmark.potential_report import write_report

    if paths["candidates"].exists():
        write_report(run_dir)
