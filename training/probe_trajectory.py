"""Element-property probe along a pretraining run: train in chunks, probe after each.

A pretraining config is trained to each epoch count in ``--epochs`` in turn (resuming the same
run, so the trajectory is one run), and after each chunk the element vectors are extracted and
probed (:func:`training.probe.probe_embedding`). ``--set KEY=VALUE`` overrides config keys
(values parsed as YAML), which is how encoder and optimiser variants are compared::

    python -m training.probe_trajectory --config cpu --dim 200 --epochs 10 20 30 40 \\
        --set outer_softplus=false --out training/runs/traj_residual

One row per probed epoch goes to ``<out>/probe_trajectory.csv`` (and is printed): the
variant's overrides, the epoch, the final loss terms, the mean R² and the R² of each target.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from crysatom_featurizers.embeddings import ElementEmbedding
from crysatom_featurizers.io import atomic_write_text
from training.config import PretrainConfig
from training.pretrain import prepare_cache, resolve_corpus, run_pretraining
from training.probe import probe_embedding


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["batch_norm=false", "lr=0.003"]`` -> ``{"batch_norm": False, "lr": 0.003}``."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"overrides are KEY=VALUE; got {item!r}")
        parsed = yaml.safe_load(value)
        if isinstance(parsed, str):
            try:  # YAML 1.1 reads "3e-3" as a string
                parsed = float(parsed)
            except ValueError:
                pass
        overrides[key.strip()] = parsed
    return overrides


def probe_trajectory(
    cfg: PretrainConfig,
    epochs: Sequence[int],
    out_dir: str | Path,
    *,
    n_estimators: int = 200,
    label: str = "",
) -> pd.DataFrame:
    """Train ``cfg`` to each count in ``epochs`` (one resumed run) and probe after each.

    Parameters
    ----------
    cfg : PretrainConfig
        The run's config; its ``epochs`` is replaced by each entry of ``epochs``.
    epochs : sequence of int
        Increasing epoch counts at which the vectors are extracted and probed.
    out_dir : path
        Run folder (checkpoint, logs, ``vectors_<epoch>.json``, ``probe_trajectory.csv``). An
        existing checkpoint there is resumed, so an interrupted trajectory continues.
    n_estimators : int
        Trees of the probe's random forest.
    label : str
        Written to the ``variant`` column.

    Returns
    -------
    pandas.DataFrame
        One row per epoch: ``variant``, ``epoch``, ``loss``, ``fr``, ``cr``, ``ssl``,
        ``mean_r2`` and the R² of each target.
    """
    epochs = [int(e) for e in epochs]
    if not epochs or any(b <= a for a, b in zip(epochs, epochs[1:])) or epochs[0] < 1:
        raise ValueError(f"epochs must be increasing positive counts; got {epochs}")
    out = Path(out_dir)
    cache = prepare_cache(cfg, *resolve_corpus(cfg))  # corpus and graphs once, not per chunk
    rows: list[dict[str, Any]] = []
    table = pd.DataFrame()
    for epoch in epochs:
        vectors = out / f"vectors_{epoch}.json"
        result = run_pretraining(
            cfg.replace(epochs=epoch), out_dir=out, vectors_path=vectors, resume=True, cache=cache
        )
        if result["epochs_run"] < epoch:  # the config's time budget ran out first
            break
        probe = probe_embedding(ElementEmbedding.from_json(vectors), n_estimators=n_estimators)
        last = result["history"][-1]
        row = {"variant": label, "epoch": result["epochs_run"]}
        row.update({k: last[k] for k in ("loss", "fr", "cr", "ssl")})
        row["mean_r2"] = probe.attrs["mean_r2"]
        row.update(dict(zip(probe["target"], probe["r2_best"])))
        rows.append(row)
        table = pd.DataFrame(rows)
        atomic_write_text(out / "probe_trajectory.csv", table.to_csv(index=False))
    return table


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="cpu", help="YAML config path or name")
    p.add_argument("--dim", type=int, default=None)
    p.add_argument("--epochs", type=int, nargs="+", required=True)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--extract-corpus", choices=["full", "train"], default="train")
    args = p.parse_args(argv)
    overrides = parse_overrides(args.overrides)
    cfg = PretrainConfig.from_yaml(
        args.config,
        dim=args.dim,
        extract_corpus=args.extract_corpus,
        progress=False,
        **overrides,
    )
    label = ",".join(args.overrides) or "config"
    table = probe_trajectory(cfg, args.epochs, args.out, label=label)
    print(table.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
