"""The harness: one :class:`Benchmark` holds data, embeddings and rows of a run."""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import gzip
import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crysatom_featurizers.embeddings import resolve
from crysatom_featurizers.io import atomic_write_bytes, atomic_write_text
from training.benchmark.config import (
    DATASET_IDS,
    LOG,
    BenchConfig,
    PropertySpec,
    resolve_path,
)
from training.benchmark.data import PropertyData, load_dataset, make_split, native
from training.benchmark.results import (
    ResultsFile,
    fit_id,
    git_info,
    hardware_info,
    read_history,
    row_fit_id,
    sized,
)
from training.corpus import REPO_ROOT


class _NoElementVectors:
    """The ``embedding: none`` of a curve variant whose network reads a universal potential's
    site vectors in place of element vectors (the estimator gets ``embedding=None``)."""

    name = "none"
    checksum = "none"
    dim = 0


NO_ELEMENT_VECTORS = _NoElementVectors()


def _repo_relative(path: str | os.PathLike | None) -> str | None:
    """``path`` relative to the repository when it lies inside it (results stay portable)."""
    if path is None:
        return None
    p = Path(path).resolve()
    try:
        return str(p.relative_to(REPO_ROOT.resolve()))
    except ValueError:
        return str(p)


class TimeBudgetExceeded(RuntimeError):
    """Raised to stop launching fits once ``--max-minutes`` is spent."""


class Benchmark:
    """Runs the experiments of a :class:`BenchConfig` into ``run_dir``."""

    def __init__(
        self,
        cfg: BenchConfig,
        run_dir: str | os.PathLike,
        *,
        resume: bool = False,
        max_minutes: float | None = None,
        data_dir: str | os.PathLike | None = None,
        properties: Sequence[str] | None = None,
        embeddings: Sequence[str] | None = None,
        sizes: Sequence[int] | None = None,
        seeds: Sequence[int] | None = None,
    ) -> None:
        self.cfg = cfg
        self.only_embeddings = None if embeddings is None else set(embeddings)
        if properties is not None:
            unknown = sorted(set(properties) - {p.name for p in cfg.properties})
            if unknown:
                raise ValueError(
                    f"unknown properties {unknown}; the config has "
                    f"{[p.name for p in cfg.properties]}"
                )
        self.only_properties = None if properties is None else list(properties)
        if sizes is not None:
            known = {int(n) for n in cfg.curve.get("sizes", [])}
            known |= {int(n) for n in cfg.matminer.get("curve_sizes", [])}
            unknown = sorted(set(sizes) - known)
            if unknown:
                raise ValueError(
                    f"unknown sizes {unknown}; the learning curves have {sorted(known)}"
                )
        self.only_sizes = None if sizes is None else {int(n) for n in sizes}
        self.only_seeds = None if seeds is None else {int(s) for s in seeds}
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.resume = resume
        self.deadline = None if max_minutes is None else time.monotonic() + 60.0 * max_minutes
        self.data_dir = data_dir if data_dir is not None else cfg.data_dir
        self.splits_dir = (
            resolve_path(cfg.splits_dir) if cfg.splits_dir else self.run_dir / "splits"
        )
        self.results = ResultsFile(self.run_dir / "results.csv")
        self._datasets: dict[str, pd.DataFrame] = {}
        self._elements: dict[str, pd.Series] = {}
        self._graphs: dict[tuple[str, bool], dict[Any, Any]] = {}
        self._properties: dict[str, PropertyData] = {}
        self.embeddings: dict[str, Any] = {}
        self._done: dict[tuple, str] = {}
        self._claims: dict[str, Any] = {}
        self._by_key: dict[str, dict[str, Any]] = {}
        self.notes_path = self.run_dir / "notes.json"
        self.notes: dict[str, str] = (
            json.loads(self.notes_path.read_text()) if self.notes_path.exists() else {}
        )

    # ---- bookkeeping ----------------------------------------------------------------------

    def properties_for(self, experiment: str) -> list[PropertySpec]:
        """The config's properties of ``experiment``, narrowed by ``--properties``."""
        specs = self.cfg.properties_for(experiment)
        if self.only_properties is None:
            return specs
        return [p for p in specs if p.name in self.only_properties]

    def note(self, key: str, message: str) -> None:
        """Record (and log) why something was skipped; shown in ``results.md``."""
        LOG.warning("%s: %s", key, message)
        with self.results.locked():
            if self.notes_path.exists():  # another process may share the run directory
                self.notes.update(json.loads(self.notes_path.read_text()))
            self.notes[key] = message
            atomic_write_text(self.notes_path, json.dumps(self.notes, indent=1, sort_keys=True))

    def clear_note(self, key: str) -> None:
        """Forget a note whose cause is gone (an embedding now available, a fit now done)."""
        if key not in self.notes:
            return
        with self.results.locked():
            if self.notes_path.exists():
                self.notes.update(json.loads(self.notes_path.read_text()))
            self.notes.pop(key, None)
            atomic_write_text(self.notes_path, json.dumps(self.notes, indent=1, sort_keys=True))

    def check_time(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TimeBudgetExceeded("the --max-minutes budget is spent")

    def write_run_info(self, experiments: Sequence[str], argv: Sequence[str]) -> None:
        """Copy the config and append git, hardware and invocation details to run_info.json."""
        if self.cfg.source_path:
            src = Path(self.cfg.source_path)
            dst = self.run_dir / "config.yaml"
            if dst.exists() and dst.read_bytes() != src.read_bytes():
                stamp = _dt.datetime.now().strftime("%Y%m%dT%H%M%S")
                atomic_write_bytes(self.run_dir / f"config.prev-{stamp}.yaml", dst.read_bytes())
            atomic_write_bytes(dst, src.read_bytes())
        info_path = self.run_dir / "run_info.json"
        self._invocation = f"{os.getpid()}-{time.time():.0f}"
        entry = {
            "invocation": self._invocation,
            "argv": list(argv),
            "experiments": list(experiments),
            "resume": self.resume,
            "config": _repo_relative(self.cfg.source_path),
            "git": git_info(),
            "hardware": hardware_info(),
        }
        with self.results.locked():
            runs = json.loads(info_path.read_text()) if info_path.exists() else []
            runs.append(entry)
            atomic_write_text(info_path, json.dumps(runs, indent=1))

    def finish_run_info(self) -> None:
        info_path = self.run_dir / "run_info.json"
        with self.results.locked():
            if not info_path.exists():
                return
            runs = json.loads(info_path.read_text())
            for entry in runs:
                if entry.get("invocation") == getattr(self, "_invocation", None):
                    entry["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
                    entry["loadavg_end"] = (
                        list(os.getloadavg()) if hasattr(os, "getloadavg") else None
                    )
            atomic_write_text(info_path, json.dumps(runs, indent=1))

    def load_done(self) -> None:
        with self.results.locked():
            frame = self.results.read()
        # a fit is identified by its training size (unique within an experiment and property)
        self._done = {
            (r.experiment, r.property, r.embedding, int(r.seed), int(r.n_train)): str(
                r.embedding_checksum
            )
            for r in frame.itertuples()
        }
        self._by_key = {
            str(r["run_key"]): r
            for r in frame.to_dict("records")
            if isinstance(r.get("run_key"), str) and not isinstance(r.get("reused_from"), str)
        }

    # ---- data -----------------------------------------------------------------------------

    def dataset(self, name: str) -> pd.DataFrame:
        if name not in self._datasets:
            t0 = time.perf_counter()
            self._datasets[name] = load_dataset(name, self.data_dir)
            LOG.info(
                "loaded %s: %d rows in %.1f s",
                name,
                len(self._datasets[name]),
                time.perf_counter() - t0,
            )
        return self._datasets[name]

    def _row_elements(self, dataset: str) -> pd.Series:
        """Element symbols of each row (frozenset), from the structures."""
        if dataset not in self._elements:
            frame = self.dataset(dataset)
            self._elements[dataset] = pd.Series(
                [frozenset(el.symbol for el in s.composition.elements) for s in frame["structure"]],
                index=frame.index,
            )
        return self._elements[dataset]

    def _allowed_elements(self) -> set[str] | None:
        if self.cfg.elements == "all":
            return None
        if self.cfg.elements == "common":
            from training.probe import COMMON_ELEMENTS

            return set(COMMON_ELEMENTS)
        return set(self.cfg.elements)

    def property_data(self, spec: PropertySpec) -> PropertyData:
        """Split (written once, then reused) and element filter of a property."""
        if spec.name in self._properties:
            return self._properties[spec.name]
        frame = self.dataset(spec.dataset)
        if spec.column not in frame.columns:
            raise KeyError(f"dataset {spec.dataset!r} has no column {spec.column!r}")
        target = pd.to_numeric(frame[spec.column], errors="coerce")
        ids = target.index[np.isfinite(target.to_numpy(dtype=float))]
        path = self.splits_dir / f"{spec.name}.json"
        if path.exists():
            stored = json.loads(path.read_text())
            if stored.get("seed") != self.cfg.split_seed or tuple(
                stored.get("fractions", ())
            ) != tuple(self.cfg.split_fractions):
                raise ValueError(
                    f"{path} was made with seed {stored.get('seed')} and fractions "
                    f"{stored.get('fractions')}, the config asks for {self.cfg.split_seed} and "
                    f"{list(self.cfg.split_fractions)}; move the file away to re-split"
                )
            parts = {k: stored[k] for k in ("train", "val", "test")}
            stored_ids = {i for part in parts.values() for i in part}
            current = {native(i) for i in ids}
            if stored_ids != current:
                raise ValueError(
                    f"{path} does not match the data: {len(stored_ids ^ current)} ids differ "
                    f"(stored {len(stored_ids)}, data {len(current)}); move it away to re-split"
                )
        else:
            parts = make_split(list(ids), self.cfg.split_seed, self.cfg.split_fractions)
            path.parent.mkdir(parents=True, exist_ok=True)
            document = {
                "property": spec.name,
                "dataset": spec.dataset,
                "column": spec.column,
                "id_column": DATASET_IDS[spec.dataset],
                "seed": self.cfg.split_seed,
                "fractions": list(self.cfg.split_fractions),
                "method": (
                    "rows with a finite target, ids sorted ascending, permuted with "
                    "numpy.random.default_rng(seed).permutation; first 80 % train, next 10 % "
                    "val, last 10 % test; lists are in permuted order (a training budget of N "
                    "crystals is a prefix of train)"
                ),
                "n": {k: len(v) for k, v in parts.items()},
                "created": _dt.datetime.now().isoformat(timespec="seconds"),
                **parts,
            }
            atomic_write_text(path, json.dumps(document))
            LOG.info("wrote split %s", path)
        allowed = self._allowed_elements()
        excluded: dict[str, int] = {}
        if allowed is not None:
            elements = self._row_elements(spec.dataset)
            for part in ("train", "val", "test"):
                keep = [i for i in parts[part] if elements.loc[i] <= allowed]
                excluded[part] = len(parts[part]) - len(keep)
                parts[part] = keep
        data = PropertyData(spec, parts["train"], parts["val"], parts["test"], excluded, path)
        self._properties[spec.name] = data
        self._write_data_summary()
        return data

    def _write_data_summary(self) -> None:
        summary = {}
        for name, data in self._properties.items():
            summary[name] = {
                "dataset": data.spec.dataset,
                "column": data.spec.column,
                "unit": data.spec.unit,
                "split_file": _repo_relative(data.split_path),
                "after_element_filter": {
                    "train": len(data.train),
                    "val": len(data.val),
                    "test": len(data.test),
                },
                "excluded_by_element_filter": data.n_excluded,
                "elements": self.cfg.elements
                if isinstance(self.cfg.elements, str)
                else list(self.cfg.elements),
                "max_train": self.cfg.max_train,
                "max_val": self.cfg.max_val,
                "budget_rule": (
                    "first max_train ids of train (split order), or the first n for a "
                    "learning-curve size n (nested budgets); first max_val ids of val"
                ),
            }
        path = self.run_dir / "data.json"
        with self.results.locked():
            previous = json.loads(path.read_text()) if path.exists() else {}
            previous.update(summary)
            atomic_write_text(path, json.dumps(previous, indent=1))

    def graphs(self, dataset: str, ids: Sequence[Any], estimator: Any) -> list[Any]:
        """Crystal graphs of rows ``ids`` as ``estimator`` reads them (built once per dataset
        row and graph kind, reused by every fit)."""
        transformer = estimator.graph_transformer(n_jobs=1)
        kind = json.dumps(transformer.get_params(), sort_keys=True, default=str)
        cache = self._graphs.setdefault((dataset, kind), {})
        missing = [i for i in ids if i not in cache]
        if missing:
            frame = self.dataset(dataset)
            t0 = time.perf_counter()
            built = transformer.transform(frame.loc[missing, "structure"])
            cache.update(zip(missing, built))
            LOG.info(
                "built %d %s graphs in %.1f s", len(missing), dataset, time.perf_counter() - t0
            )
        return [cache[i] for i in ids]

    def targets(self, spec: PropertySpec, ids: Sequence[Any]) -> np.ndarray:
        frame = self.dataset(spec.dataset)
        return frame.loc[list(ids), spec.column].to_numpy(dtype=np.float64)

    def embedding(self, label: str, spec: str) -> Any | None:
        """The embedding of a spec, or None (with a note) when it is not available; the spec
        ``"none"`` (no element vectors, for a variant whose nodes read site vectors) gives
        :data:`NO_ELEMENT_VECTORS`."""
        if spec == NO_ELEMENT_VECTORS.name:
            self.embeddings[label] = NO_ELEMENT_VECTORS
        if label not in self.embeddings:
            try:
                self.embeddings[label] = resolve(spec, base_dir=REPO_ROOT)
                self.clear_note(f"embedding {label}")
            except Exception as exc:  # unavailable files, unknown names
                self.note(f"embedding {label}", f"skipped, not available: {exc}")
                self.embeddings[label] = None
        return self.embeddings[label]

    # ---- row writing ----------------------------------------------------------------------

    def wanted(self, label: str) -> bool:
        """Whether ``--embeddings`` (if given) selects ``label``."""
        return self.only_embeddings is None or label in self.only_embeddings

    def wanted_size(self, n_train: int) -> bool:
        """Whether ``--sizes`` (if given) selects the learning-curve size ``n_train``."""
        return self.only_sizes is None or int(n_train) in self.only_sizes

    def wanted_seed(self, seed: int) -> bool:
        """Whether ``--seeds`` (if given) selects ``seed``."""
        return self.only_seeds is None or int(seed) in self.only_seeds

    def is_done(
        self, experiment: str, prop: str, label: str, seed: int, frac: float, n_train: int
    ) -> bool:
        """Whether the row exists for the current vectors of ``label``.

        A row computed from an older vector file of the same label (another checksum) is
        stale: it is removed from ``results.csv`` and the fit runs again.
        """
        key = (experiment, prop, label, int(seed), int(n_train))
        if key not in self._done:
            return False
        emb = self.embeddings.get(label)
        if emb is None or self._done[key] == str(emb.checksum):
            return True
        removed = self.results.drop_rows(
            lambda f: (
                (f["experiment"] == experiment)
                & (f["property"] == prop)
                & (f["embedding"] == label)
                & (f["seed"].astype(int) == int(seed))
                & (f["n_train"].astype(int) == int(n_train))
            )
        )
        LOG.info(
            "%s: %d row(s) from other vectors (checksum %s, now %s) removed; refitting",
            fit_id(experiment, prop, label, seed, frac, n_train if sized(experiment) else None),
            removed,
            self._done[key],
            emb.checksum,
        )
        del self._done[key]
        return False

    def record(self, row: dict[str, Any]) -> None:
        row["finished_at"] = _dt.datetime.now().isoformat(timespec="seconds")
        self.results.append(row)
        self.clear_note(row_fit_id(row))
        self._done[
            (
                row["experiment"],
                row["property"],
                row["embedding"],
                int(row["seed"]),
                int(row["n_train"]),
            )
        ] = str(row["embedding_checksum"])
        if not isinstance(row.get("reused_from"), str):
            self._by_key[row["run_key"]] = row
        LOG.info(
            "%s | %s | %s | seed %s | frac %g: MAE %.4g %s (%.0f s)",
            row["experiment"],
            row["property"],
            row["embedding"],
            row["seed"],
            row["train_fraction"],
            row["test_mae"],
            row["unit"],
            row["fit_seconds"],
        )

    def reuse(self, key: str, experiment: str, label: str, fraction: float) -> bool:
        """Copy a finished identical fit (same run key) into ``experiment``."""
        source = self._by_key.get(key)
        if source is None:
            return False
        row = dict(source)
        source_id = row_fit_id(source)
        target_id = fit_id(
            experiment,
            str(row["property"]),
            label,
            int(row["seed"]),
            fraction,
            int(row["n_train"]) if sized(experiment) else None,
        )
        history = read_history(self.run_dir, source_id)
        if history is not None:
            (self.run_dir / "histories").mkdir(exist_ok=True)
            atomic_write_text(
                self.run_dir / "histories" / f"{target_id}.csv",
                history.to_csv(index=False, float_format="%.6g"),
            )
        src = self.run_dir / "predictions" / f"{source_id}.csv.gz"
        if src.exists():
            atomic_write_bytes(
                self.run_dir / "predictions" / f"{target_id}.csv.gz", src.read_bytes()
            )
        row.update(
            experiment=experiment, embedding=label, train_fraction=fraction, reused_from=source_id
        )
        self.record(row)
        return True

    def save_predictions(self, run_id: str, seed: int, ids, y_true, y_pred) -> None:
        mode = self.cfg.save_predictions
        if mode == "none" or (mode == "first_seed" and seed != self.cfg.seeds[0]):
            return
        folder = self.run_dir / "predictions"
        folder.mkdir(exist_ok=True)
        frame = pd.DataFrame({"id": list(ids), "y_true": y_true, "y_pred": y_pred})
        text = frame.to_csv(index=False, float_format="%.6g")
        atomic_write_bytes(folder / f"{run_id}.csv.gz", gzip.compress(text.encode(), mtime=0))

    # ---- claims: processes sharing a run directory split the fits ------------------------

    def claim(self, run_id: str) -> bool:
        """Claim a fit for this process; False when another live process holds it.

        A claim is an exclusive ``flock`` on ``claims/<run_id>``, held until :meth:`release`.
        The kernel drops the lock when its process ends, however it ends, so a crashed run's
        fits are free again without any bookkeeping; the file holds the owner's host and
        process id for people only.
        """
        folder = self.run_dir / "claims"
        folder.mkdir(exist_ok=True)
        handle = open(folder / run_id, "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{platform.node()} {os.getpid()}\n")
        handle.flush()
        self._claims[run_id] = handle
        return True

    def release(self, run_id: str) -> None:
        """Give up a claim of this process (the fit's row is written before)."""
        handle = self._claims.pop(run_id, None)
        if handle is None:
            return
        with contextlib.suppress(FileNotFoundError):
            (self.run_dir / "claims" / run_id).unlink()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()

    def others_running(self) -> bool:
        """Whether another process holds a claim in this run directory."""
        folder = self.run_dir / "claims"
        if not folder.is_dir():
            return False
        for path in folder.iterdir():
            if path.name in self._claims:
                continue
            with open(path, "a+") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                fcntl.flock(handle, fcntl.LOCK_UN)
        return False
