"""Element-property probe of every encoder depth of a pretraining checkpoint.

The shipped vectors average the *final* node embeddings per element. This diagnostic extracts
the same corpus-wide, eval-mode, L2-normalised averages after the input map (depth 0) and after
each convolution (depth 1..L) and runs the element-property probe on each, for the trained
weights and, as a control, for the same architecture at its random initialisation::

    python -m training.layer_probe --run training/runs/cpu_d200 [--extract-corpus train] \\
        [--out training/results/probe/layer_probe_crysatom_200.csv]

Results go to ``--out`` (default ``<run>/layer_probe.csv``) and are printed as a table.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from crysatom_featurizers.embeddings import ElementEmbedding
from crysatom_featurizers.io import atomic_write_text
from training.config import PretrainConfig
from training.extract import extract_element_vectors
from training.model import CrysAtomPretrainer
from training.pretrain import extraction_cache, prepare_cache, resolve_corpus
from training.probe import probe_embedding


class _AllDepths(torch.nn.Module):
    """Wraps a pretrainer so that ``encode`` returns the node embeddings after the input map
    and after every convolution side by side: ``Float[N, (L + 1) * dim]``."""

    def __init__(self, model: CrysAtomPretrainer) -> None:
        super().__init__()
        self.model = model

    @property
    def input(self):  # the extraction reads ``input.covered``
        return self.model.input

    def encode(self, batch) -> torch.Tensor:
        enc = self.model.encoder
        outs: list[torch.Tensor] = []
        hooks = [
            m.register_forward_hook(lambda _m, _i, out: outs.append(out))
            for m in (enc.input, *enc.convs)
        ]
        try:
            self.model.encode(batch)
        finally:
            for h in hooks:
                h.remove()
        return torch.cat(outs, dim=1)


def depth_vectors(model: CrysAtomPretrainer, cache) -> list[ElementEmbedding]:
    """Element vectors after the input map (depth 0) and after each convolution, from one
    pass over the corpus; element ``d`` is what the encoder truncated after ``d`` convolutions
    gives."""
    ext = extract_element_vectors(_AllDepths(model), cache)
    symbols = list(ext["vectors"])
    stacked = np.stack([ext["vectors"][s] for s in symbols])
    blocks = np.split(stacked, model.encoder.num_layers + 1, axis=1)
    # the per-element mean was normalised as a whole; each block is rescaled to unit length
    return [
        ElementEmbedding(f"depth{d}", symbols, b / np.linalg.norm(b, axis=1, keepdims=True))
        for d, b in enumerate(blocks)
    ]


def layer_probe(
    run: str | Path, extract_corpus: str = "train", n_estimators: int = 200
) -> pd.DataFrame:
    """Probe mean R² per encoder depth, trained and at initialisation.

    Parameters
    ----------
    run : path
        Run folder with ``checkpoint.pt``.
    extract_corpus : {"train", "full"}
        Crystals the vectors are averaged over.
    n_estimators : int
        Trees of the probe's random forest.

    Returns
    -------
    pandas.DataFrame
        One row per (weights, depth): ``weights`` ("trained" or "init"), ``depth``,
        ``mean_r2`` and the R² of each target.
    """
    ckpt = torch.load(Path(run) / "checkpoint.pt", map_location="cpu", weights_only=True)
    cfg = PretrainConfig.from_dict(
        {**ckpt["config"], "extract_corpus": extract_corpus, "compile_convs": False}
    )
    cache = extraction_cache(cfg, prepare_cache(cfg, *resolve_corpus(cfg)))
    rows = []
    for weights in ("trained", "init"):
        torch.manual_seed(cfg.seed)
        model = CrysAtomPretrainer(cfg)
        if weights == "trained":
            model.load_state_dict(ckpt["model"])
        for depth, emb in enumerate(depth_vectors(model, cache)):
            res = probe_embedding(emb, n_estimators=n_estimators)
            row = {"weights": weights, "depth": depth, "mean_r2": res.attrs["mean_r2"]}
            row.update(dict(zip(res["target"], res["r2_best"])))
            rows.append(row)
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="run folder with checkpoint.pt")
    p.add_argument("--extract-corpus", choices=["train", "full"], default="train")
    p.add_argument("--out", default=None, help="CSV path (default: <run>/layer_probe.csv)")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    table = layer_probe(args.run, args.extract_corpus)
    out = Path(args.out) if args.out else Path(args.run) / "layer_probe.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, table.to_csv(index=False))
    print(table.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
