"""The element-property probe (``training/probe.py``) of the configured embeddings."""

from __future__ import annotations

import datetime as _dt
import time

import pandas as pd

from crysatom_featurizers.embeddings import spec_label
from training.benchmark.config import (
    LOG,
)
from training.benchmark.harness import Benchmark


def run_probe(bench: Benchmark) -> None:
    """Element-property probe (``training/probe.py``) of the configured embeddings."""
    from training import probe as probe_mod

    pc = bench.cfg.probe
    specs = list(pc.get("embeddings", bench.cfg.embeddings))
    settings = {
        "n_splits": int(pc.get("n_splits", 5)),
        "n_repeats": int(pc.get("n_repeats", 3)),
        "n_estimators": int(pc.get("n_estimators", 200)),
        "models": list(pc.get("models", probe_mod.MODELS)),
    }
    out = bench.run_dir / "probe"
    long_path = out / "probe_long.csv"
    done = set()
    if bench.resume and long_path.exists():
        done = set(pd.read_csv(long_path)["embedding"])
    elif long_path.exists():
        long_path.unlink()
    for spec in specs:
        label = spec_label(spec)
        emb = bench.embedding(label, spec)
        if emb is None or label in done:
            continue
        bench.check_time()
        t0 = time.perf_counter()
        long = probe_mod.probe_embedding(
            emb,
            n_repeats=settings["n_repeats"],
            n_splits=settings["n_splits"],
            n_estimators=settings["n_estimators"],
            models=settings["models"],
        )
        long.insert(0, "dim", int(emb.dim))
        long.insert(0, "embedding", label)
        probe_mod.write_results(
            long,
            out,
            {
                **settings,
                "elements": f"COMMON_ELEMENTS ({len(probe_mod.COMMON_ELEMENTS)})",
                "date": _dt.date.today().isoformat(),
            },
            merge=True,
        )
        LOG.info(
            "probe %s: mean R² %.3f (%.0f s)",
            label,
            long["r2_best"].mean(),
            time.perf_counter() - t0,
        )
