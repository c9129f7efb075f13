"""How much structure does a pretrained encoder's node embedding carry beyond the element?

For a sample of crystals, the node embeddings of the encoder are split into the part that the
element of the site explains (the mean embedding of that element over the sample) and the rest.
Reported per encoder:

* ``element_r2``: share of the embeddings' total variance explained by the element alone
  (between-element over total variance). 1 means every site of an element gets the same
  vector wherever it sits: the encoder would carry nothing that the element vectors do not.
* ``strain_change``: mean relative change of the node embeddings when every crystal is
  strained isotropically by +5% (norm of the difference over the norm of the embedding).

An encoder with the same architecture and random weights is the reference: its embeddings
mix the neighbourhood in by construction, so the two numbers say how much of that the
pretraining kept.

Usage::

    python -m training.encoder_diagnostics [--encoder crysatom] [--n 1000] \\
        [--out training/results/encoder_diagnostics.json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from crysatom_featurizers.graphs import CGCNN_GRAPH, PackedGraphs, structures_to_graphs
from crysatom_featurizers.nn import CGCNN, CGCNNEncoder, load_encoder
from crysatom_featurizers.nn.transfer import node_embeddings


def element_r2(embeddings: np.ndarray, z: np.ndarray) -> float:
    """Between-element variance of ``embeddings`` (rows: sites) over their total variance."""
    centred = embeddings - embeddings.mean(axis=0)
    total = float((centred**2).sum())
    within = 0.0
    for value in np.unique(z):
        rows = embeddings[z == value]
        within += float(((rows - rows.mean(axis=0)) ** 2).sum())
    return 1.0 - within / total if total > 0 else float("nan")


def diagnose(model: CGCNN, structures: Sequence) -> dict[str, float]:
    """``element_r2`` and ``strain_change`` of ``model``'s encoder on ``structures``."""
    strained = []
    for s in structures:
        s = s.copy()
        s.apply_strain(0.05)
        strained.append(s)
    out = []
    for batch in (structures, strained):
        graphs = structures_to_graphs(
            list(batch), expand_edges=False, allow_isolated=True, n_jobs=1
        )
        packed = PackedGraphs.from_graphs(graphs)
        out.append((node_embeddings(model, packed).numpy(), packed.tensors["z"].numpy()))
    (h, z), (h_strained, _) = out
    change = np.linalg.norm(h_strained - h, axis=1) / np.maximum(np.linalg.norm(h, axis=1), 1e-12)
    return {"element_r2": element_r2(h, z), "strain_change": float(change.mean())}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.encoder_diagnostics", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--encoder", default="crysatom", help="shipped name or encoder file")
    parser.add_argument("--n", type=int, default=1000, help="JARVIS crystals (seed-0 sample)")
    parser.add_argument("--data", default="../shared/data/jarvis_dft_3d_2021.json.gz")
    parser.add_argument("--out", default="training/results/encoder_diagnostics.json")
    args = parser.parse_args(argv)

    from training.benchmark.data import load_dataset

    frame = load_dataset("jarvis", Path(args.data).parent)
    rows = np.random.default_rng(0).choice(len(frame), size=args.n, replace=False)
    structures = [frame["structure"].iloc[i] for i in rows]
    torch.manual_seed(0)
    encoder, metadata = load_encoder(args.encoder)
    kwargs = dict(graph=CGCNN_GRAPH)
    random = CGCNNEncoder(encoder.in_dim, encoder.hidden_dim, encoder.num_layers, encoder.edge_dim)
    results = {
        "encoder": args.encoder,
        "encoder_checksum": metadata.get("checksum"),
        "n_crystals": args.n,
        "pretrained": diagnose(
            CGCNN.from_encoder(encoder, metadata["input_embedding"], **kwargs), structures
        ),
        "random_init": diagnose(
            CGCNN.from_encoder(random, metadata["input_embedding"], **kwargs), structures
        ),
    }
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
