"""Element vectors read out from other depths of a pretraining run: candidate vector files.

The method reads the vectors off the final encoder layer. The layer probe
(``training/layer_probe.py``) shows the first layers keep more element information, so the
downstream comparison (``training/benchmark``) also tries read-outs that use every depth. From
one pass over the extraction corpus (the run's corpus-wide, eval-mode averages, each depth L2
normalised) this writes:

* ``<name>_final.json``: the final layer (the method's own read-out, the run's vectors);
* ``<name>_meandepth.json``: the mean over depths 0..L (input map and every convolution),
  renormalised to unit length;
* ``<name>_concat.json``: the depths side by side, ``(L + 1) * dim`` numbers per element,
  scaled to unit length.

Usage::

    python -m training.readouts --run training/runs/cpu_d200 --out training/results/candidates
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crysatom_featurizers.embeddings import ElementEmbedding
from training.config import PretrainConfig
from training.layer_probe import depth_vectors
from training.model import CrysAtomPretrainer
from training.pretrain import extraction_cache, prepare_cache, resolve_corpus
from training.provenance import cpu_model, git_commit

READOUTS = ("final", "meandepth", "concat")


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def readout_vectors(depths: Sequence[ElementEmbedding]) -> dict[str, ElementEmbedding]:
    """The three read-outs of per-depth element vectors (same symbols at every depth)."""
    symbols = list(depths[0].symbols)
    stack = np.stack([np.asarray(d.vectors_for(symbols), dtype=np.float64) for d in depths])
    return {
        "final": ElementEmbedding("final", symbols, _unit(stack[-1])),
        "meandepth": ElementEmbedding("meandepth", symbols, _unit(stack.mean(axis=0))),
        "concat": ElementEmbedding("concat", symbols, _unit(np.concatenate(list(stack), axis=1))),
    }


def write_readouts(
    run: str | Path, out: str | Path, name: str = "crysatom_200", extract_corpus: str = "full"
) -> dict[str, Path]:
    """Extract the read-outs of ``run/checkpoint.pt`` and write one vector file each.

    Returns
    -------
    dict
        Read-out name -> path written.
    """
    run = Path(run)
    t0 = time.time()
    ckpt = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    cfg = PretrainConfig.from_dict(
        {**ckpt["config"], "extract_corpus": extract_corpus, "compile_convs": False}
    )
    frame, info, checksum = resolve_corpus(cfg)
    cache = extraction_cache(cfg, prepare_cache(cfg, frame, info, checksum))
    model = CrysAtomPretrainer(cfg)
    model.load_state_dict(ckpt["model"])
    depths = depth_vectors(model, cache)
    wall = round(time.time() - t0, 1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for readout, emb in readout_vectors(depths).items():
        metadata: dict[str, Any] = {
            "source": "CrysAtom pretraining read-outs (training/readouts.py)",
            "readout": readout,
            "readout_method": {
                "final": "final encoder layer (the method's read-out)",
                "meandepth": f"mean of the L2-normalised averages after the input map and each "
                f"of the {cfg.num_layers} convolutions, renormalised",
                "concat": f"the {cfg.num_layers + 1} L2-normalised per-depth averages side by "
                "side, scaled to unit length",
            }[readout],
            "run": str(run),
            "config": cfg.to_dict(),
            "epochs_run": int(ckpt["epoch"]),
            "corpus": info,
            "corpus_size": int(cache.num_crystals) if hasattr(cache, "num_crystals") else None,
            "extraction_corpus": extract_corpus,
            "training_git_commit": ckpt.get("git_commit"),
            "git_commit": git_commit(),
            "hardware": {"cpu": cpu_model(), "torch_threads": torch.get_num_threads()},
            "extraction_wall_time_s": wall,
            "license": "MIT (derived from JARVIS-DFT (NIST) and Materials Project (CC-BY 4.0) "
            "structures)",
        }
        path = out / f"{name}_{readout}.json"
        ElementEmbedding(f"{name}_{readout}", emb.symbols, emb.vectors, metadata).to_json(path)
        written[readout] = path
    return written


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="run folder with checkpoint.pt")
    p.add_argument("--out", required=True, help="folder for the candidate vector files")
    p.add_argument("--name", default="crysatom_200", help="file name prefix")
    p.add_argument("--extract-corpus", choices=["train", "full"], default="full")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for readout, path in write_readouts(args.run, args.out, args.name, args.extract_corpus).items():
        print(f"{readout}: {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
