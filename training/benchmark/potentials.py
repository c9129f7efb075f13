"""Universal-potential features on the learning curve: frozen CHGNet / SevenNet outputs with a
simple head (ridge, boosting, a small MLP), and the potentials' zero-shot moduli.

Two steps, both on the rows of ``bench_curve`` (the same training prefixes, the same 500
validation crystals and the whole test split of every property):

1. ``featurize``: every crystal of a property's training pool (the first 1,000), validation and
   test split through :class:`~crysatom_featurizers.featurizers.UniversalPotentialStructureFeaturizer`,
   feature group by feature group, saved per property in chunks (a stopped run resumes at its
   last chunk)::

       python -m training.benchmark.potentials featurize --model chgnet

2. ``fit``: for each property, size and head, every feature-group set and hyperparameter is
   scored on the validation crystals; the choice is scored once on test. Every candidate's
   validation and test MAE is written to ``potentials.csv``, the choices to ``potentials.md``::

       python -m training.benchmark.potentials fit

Leak classes (``LEAK``): the potentials were trained on MPtrj, which holds the MP energies of
the MP test crystals (MP formation energy *seen*); JARVIS formation energies are energies of
overlapping compounds under another functional (*related*); band gaps and moduli were never
labels (*unseen*; stresses were).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from crysatom_featurizers.embeddings.builtin import LEAK_CLASSES
from training.benchmark.config import BenchConfig, resolve_path
from training.benchmark.harness import Benchmark

LOG = logging.getLogger(__name__)

CONFIG = "training/configs/bench_curve.yaml"
FEATURE_DIR = "training/runs/potential_features"
RUN_DIR = "training/results/bench_curve"
POOL = 1000  # the largest curve size: every size is a prefix of it
MODULI = ("bulk_modulus_kv", "shear_modulus_gv")
LEAK = LEAK_CLASSES["potential"]

#: Feature groups computed per property: the moduli get the strained-cell estimates too.
#: "state" runs first: its stress pass leaves every output in the cache for the latent groups.
GROUPS = {
    "state": {"stats": (), "crystal_feature": False, "physics": ("energy", "stress")},
    "site_stats": {"stats": ("mean", "std_dev", "minimum", "maximum"), "crystal_feature": False},
    "crystal": {"stats": (), "crystal_feature": None},
    "magmom": {"stats": (), "crystal_feature": False, "physics": ("magmom",)},
    "bulk_modulus": {"stats": (), "crystal_feature": False, "physics": ("bulk_modulus",)},
    "elastic": {"stats": (), "crystal_feature": False, "physics": ("elastic",)},
}


def groups_for(model: str, prop: str) -> list[str]:
    """The feature groups computed for ``prop`` with ``model``."""
    from crysatom_featurizers.potentials import potential_class

    backend = potential_class(model)
    out = ["state", "site_stats"]
    if backend.crystal_dim:
        out.append("crystal")
    if backend.has_magmom:
        out.append("magmom")
    if prop in MODULI:
        out += ["bulk_modulus", "elastic"]
    return out


def bench() -> Benchmark:
    cfg = BenchConfig.from_yaml(CONFIG)
    return Benchmark(cfg, resolve_path(RUN_DIR), resume=True)


def property_rows(b: Benchmark, prop: str) -> dict[str, list]:
    """The curve's ids of ``prop``: training pool (first 1,000), validation, test."""
    spec = next(p for p in b.cfg.properties if p.name == prop)
    data = b.property_data(spec)
    val = data.val if b.cfg.max_val is None else data.val[: b.cfg.max_val]
    return {"train": list(data.train[:POOL]), "val": list(val), "test": list(data.test)}


# ------------------------------------------------------------------------------ featurize
def featurize(
    model: str, properties: Sequence[str], chunk: int = 500, skip: Sequence[str] = ()
) -> None:
    """Features of every curve crystal of ``properties`` with ``model``, in resumable chunks
    (``skip``: feature groups left out, e.g. the 6 strained cells of ``"elastic"``)."""
    from crysatom_featurizers.featurizers import UniversalPotentialStructureFeaturizer

    b = bench()
    out_dir = resolve_path(FEATURE_DIR) / model
    out_dir.mkdir(parents=True, exist_ok=True)
    for prop in properties:
        final = out_dir / f"{prop}.npz"
        if final.exists():
            LOG.info("%s %s: done", model, prop)
            continue
        spec = next(p for p in b.cfg.properties if p.name == prop)
        rows = property_rows(b, prop)
        ids = rows["train"] + rows["val"] + rows["test"]
        frame = b.dataset(spec.dataset)
        blocks: dict[str, list[np.ndarray]] = {}
        labels: dict[str, list[str]] = {}
        seconds: dict[str, float] = {}
        for group in [g for g in groups_for(model, prop) if g not in skip]:
            featurizer = UniversalPotentialStructureFeaturizer(model, n_jobs=1, **GROUPS[group])
            labels[group] = featurizer.feature_labels()
            parts = []
            spent = 0.0
            for start in range(0, len(ids), chunk):
                part = out_dir / f"{prop}.{group}.{start // chunk:04d}.npz"
                if part.exists():
                    stored = np.load(part)
                    parts.append(stored["x"])
                    spent += float(stored["seconds"])
                    continue
                structures = list(frame.loc[ids[start : start + chunk], "structure"])
                t0 = time.perf_counter()
                x = featurizer.featurize_many(structures, ignore_errors=True)
                dt = time.perf_counter() - t0
                np.savez(part, x=x, seconds=dt)
                parts.append(x)
                spent += dt
                LOG.info(
                    "%s %s %s: %d / %d crystals (%.1f ms each)",
                    model,
                    prop,
                    group,
                    min(start + chunk, len(ids)),
                    len(ids),
                    1000 * dt / max(1, len(structures)),
                )
            blocks[group] = parts
            seconds[group] = spent
        np.savez_compressed(
            final,
            ids=np.asarray(ids),
            **{f"x_{g}": np.vstack(p) for g, p in blocks.items()},
            meta=json.dumps(
                {
                    "model": model,
                    "property": prop,
                    "rows": {k: len(v) for k, v in rows.items()},
                    "labels": labels,
                    "seconds": seconds,
                    "seconds_per_crystal": {g: s / len(ids) for g, s in seconds.items()},
                }
            ),
        )
        for part in out_dir.glob(f"{prop}.*.*.npz"):
            part.unlink()
        LOG.info("%s %s: wrote %s", model, prop, final)


def load_features(model: str, prop: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The saved features of ``prop``: a frame indexed by id with (group, label) columns."""
    path = resolve_path(FEATURE_DIR) / model / f"{prop}.npz"
    stored = np.load(path, allow_pickle=False)
    meta = json.loads(str(stored["meta"]))
    frames = []
    for group, labels in meta["labels"].items():
        frames.append(
            pd.DataFrame(
                stored[f"x_{group}"],
                columns=pd.MultiIndex.from_product([[group], labels]),
            )
        )
    frame = pd.concat(frames, axis=1)
    frame.index = pd.Index(stored["ids"].tolist())
    return frame, meta


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.benchmark.potentials", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    feat = sub.add_parser("featurize", help="potential features of every curve crystal")
    feat.add_argument("--model", required=True, choices=["chgnet", "sevennet"])
    feat.add_argument(
        "--properties",
        default="formation_energy_peratom,mbj_bandgap,formation_energy_per_atom,"
        "bulk_modulus_kv,shear_modulus_gv",
    )
    feat.add_argument("--skip", default="", help="feature groups to leave out, e.g. elastic")
    fit = sub.add_parser("fit", help="heads on the saved features; potentials.csv and .md")
    fit.add_argument("--models", default="chgnet,sevennet")
    fit.add_argument("--properties", default=None, help="comma-separated; default: all five")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import torch

    torch.set_num_threads(1)
    if args.command == "featurize":
        featurize(
            args.model, args.properties.split(","), skip=[g for g in args.skip.split(",") if g]
        )
    else:
        from training.benchmark.potential_heads import run_fits

        if args.properties:
            run_fits(args.models.split(","), args.properties.split(","))
        else:
            run_fits(args.models.split(","))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
