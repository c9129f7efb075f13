"""``results.csv`` under a file lock, run identifiers, scores and provenance."""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import math
import os
import platform
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crysatom_featurizers.io import atomic_write_text
from training.provenance import git_state

#: Columns of ``results.csv``; the first sixteen are the documented schema, the rest bookkeeping.
COLUMNS: tuple[str, ...] = (
    "experiment",
    "property",
    "unit",
    "embedding",
    "dim",
    "seed",
    "train_fraction",
    "n_train",
    "n_val",
    "n_test",
    "test_mae",
    "test_rmse",
    "test_r2",
    "best_epoch",
    "epochs_run",
    "fit_seconds",
    "model",
    "embedding_checksum",
    "run_key",
    "reused_from",
    "finished_at",
)


def regression_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE (target units) and R² of predictions."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    err = y_pred - y_true
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    return {
        "test_mae": float(np.mean(np.abs(err))),
        "test_rmse": float(np.sqrt(np.mean(err**2))),
        "test_r2": 1.0 - float(np.sum(err**2)) / ss_tot if ss_tot > 0 else math.nan,
    }


def run_key(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def sized(experiment: str) -> bool:
    """Whether an experiment names its training budgets by size (the learning curve)."""
    return experiment.startswith("curve")


def row_fit_id(row: Any) -> str:
    """:func:`fit_id` of a results row (a dict or a mapping-like record)."""
    return fit_id(
        str(row["experiment"]),
        str(row["property"]),
        str(row["embedding"]),
        int(row["seed"]),
        float(row["train_fraction"]),
        int(row["n_train"]) if sized(str(row["experiment"])) else None,
    )


def fit_id(
    experiment: str, prop: str, label: str, seed: int, fraction: float, size: int | None = None
) -> str:
    """File stem of a fit: the training budget as a fraction, or as a size (learning curve)."""
    budget = f"f{fraction:g}" if size is None else f"n{int(size)}"
    return f"{experiment}__{prop}__{label}__s{seed}__{budget}"


def git_info() -> dict[str, Any]:
    """Commit of the repository and whether the working tree differs from it."""
    commit, status = git_state()
    return {"commit": commit, "dirty": bool(status), "n_changed_paths": len(status or [])}


def hardware_info() -> dict[str, Any]:
    """Host, CPU, GPU and load average at call time."""
    import sklearn
    import torch

    info: dict[str, Any] = {
        "time": _dt.datetime.now().isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "cuda": torch.cuda.is_available(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    if info["cuda"]:
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


class ResultsFile:
    """``results.csv`` with row-by-row appends under a file lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.parent / f".{path.name}.lock"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read(self) -> pd.DataFrame:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return pd.DataFrame(columns=list(COLUMNS))
        frame = pd.read_csv(self.path)
        for col in COLUMNS:
            if col not in frame.columns:
                frame[col] = np.nan
        return frame

    def append(self, row: dict[str, Any]) -> None:
        frame = pd.DataFrame([{c: row.get(c, np.nan) for c in COLUMNS}])
        with self.locked():
            header = not self.path.exists() or self.path.stat().st_size == 0
            frame.to_csv(self.path, mode="a", header=header, index=False)

    def drop_rows(self, mask_fn: Callable[[pd.DataFrame], pd.Series]) -> int:
        """Remove the rows where ``mask_fn(frame)`` is true; returns how many."""
        with self.locked():
            frame = self.read()
            drop = mask_fn(frame).to_numpy(bool)
            if drop.any():
                atomic_write_text(self.path, frame.loc[~drop].to_csv(index=False))
        return int(drop.sum())

    def drop_experiments(self, experiments: Sequence[str]) -> int:
        """Remove the rows of ``experiments`` (a fresh, non-resumed run of them)."""
        with self.locked():
            frame = self.read()
            keep = ~frame["experiment"].isin(list(experiments))
            removed = int((~keep).sum())
            if removed:
                atomic_write_text(self.path, frame.loc[keep].to_csv(index=False))
        return removed


# ---- per-epoch histories -----------------------------------------------------------------------

#: The tracked form of a run's per-epoch histories: one compressed table, a row per epoch of
#: each fit (column ``fit``). Fits write loose ``histories/<fit id>.csv`` files while a run
#: goes (safe with several processes); :func:`pack_histories` folds them into the table.
PACKED_HISTORIES = "histories.csv.xz"
_PACKED_CACHE: dict[Path, tuple[float, dict[str, pd.DataFrame]]] = {}


def _packed_histories(run_dir: Path) -> dict[str, pd.DataFrame]:
    path = Path(run_dir) / PACKED_HISTORIES
    if not path.exists():
        return {}
    stamp = path.stat().st_mtime
    cached = _PACKED_CACHE.get(path)
    if cached is None or cached[0] != stamp:
        table = pd.read_csv(path)
        groups = {
            str(fit): group.drop(columns="fit").dropna(axis=1, how="all").reset_index(drop=True)
            for fit, group in table.groupby("fit", sort=False)
        }
        _PACKED_CACHE[path] = cached = (stamp, groups)
    return cached[1]


def read_history(run_dir: str | os.PathLike, fit: str) -> pd.DataFrame | None:
    """The per-epoch history of fit ``fit`` of a run: its loose file if there is one, else its
    rows of the packed table; None when the run has neither."""
    loose = Path(run_dir) / "histories" / f"{fit}.csv"
    if loose.exists():
        return pd.read_csv(loose)
    history = _packed_histories(Path(run_dir)).get(fit)
    return None if history is None else history.copy()


def pack_histories(run_dir: str | os.PathLike) -> int:
    """Fold the loose ``histories/*.csv`` of a run into its packed table (a loose file replaces
    the packed rows of the same fit), then remove them. Returns the number of fits packed.
    """
    run_dir = Path(run_dir)
    loose = sorted((run_dir / "histories").glob("*.csv"))
    if not loose:
        return 0
    packed = dict(_packed_histories(run_dir))
    for path in loose:
        packed[path.stem] = pd.read_csv(path)
    table = pd.concat(
        [frame.assign(fit=fit) for fit, frame in sorted(packed.items())], ignore_index=True
    )
    columns = ["fit", *[c for c in table.columns if c != "fit"]]
    target = run_dir / PACKED_HISTORIES
    tmp = target.with_name(target.name + ".tmp.xz")
    # five significant digits: a loss curve needs no more; xz packs the repeated fit ids well
    table[columns].to_csv(tmp, index=False, float_format="%.5g", compression="xz")
    os.replace(tmp, target)
    for path in loose:
        path.unlink()
    return len(loose)
