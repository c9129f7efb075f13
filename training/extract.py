"""Element vectors from a pretrained encoder: corpus-wide, eval-mode average per element.

For every (site, species) entry of every crystal of the corpus, the final node embedding of the
site is added to its element's sum with the species' occupancy as weight (1 for ordered sites).
The per-element mean is then L2-normalised. This differs from the reference code, which keeps
the average over the last training batch containing each element (Algorithm 1); the
corpus-wide average after training, with BatchNorm in eval mode, does not depend on batch
composition or on the training order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from crysatom_featurizers.chemistry import element_symbol
from training.graph_cache import GraphCache

EXTRACTION_METHOD = "corpus-wide eval-mode average"


@torch.no_grad()
def extract_element_vectors(
    model: Any,
    cache: GraphCache,
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    max_z: int = 118,
    progress: bool = False,
) -> dict[str, Any]:
    """Average the final node embeddings of ``model`` per element over the cached corpus.

    Parameters
    ----------
    model : CrysAtomPretrainer
        Anything with ``encode(batch)`` and an ``input`` layer exposing ``covered``.
    cache : GraphCache
        The corpus graphs; every crystal is visited once, in cache order.
    batch_size : int
        Crystals per forward pass (does not change the result: eval mode).
    device : torch.device or str
    max_z : int
        Largest atomic number tracked.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        ``vectors`` ({symbol: float32 array}, L2-normalised), ``counts`` ({symbol: number of
        (site, species) entries}), ``weights`` ({symbol: summed occupancy}), ``absent``
        (symbols the input features cover but the corpus never contains), ``num_crystals``.
    """
    was_training = model.training
    model.eval()
    dim = None
    sums = counts = weights = None
    n_crystals = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cache.num_crystals, desc="extract", mininterval=10)
    try:
        for _, shard in cache.iter_shards():
            for start in range(0, len(shard), batch_size):
                idx = np.arange(start, min(start + batch_size, len(shard)))
                batch = shard.batch(idx).to(device)
                h = model.encode(batch).double()
                if sums is None:
                    dim = h.shape[1]
                    sums = torch.zeros((max_z + 1, dim), dtype=torch.float64, device=h.device)
                    weights = torch.zeros(max_z + 1, dtype=torch.float64, device=h.device)
                    counts = torch.zeros(max_z + 1, dtype=torch.long, device=h.device)
                w = batch.species_weight.double()
                sums.index_add_(0, batch.species_z, h[batch.species_site_index] * w.unsqueeze(1))
                weights.index_add_(0, batch.species_z, w)
                counts += torch.bincount(batch.species_z, minlength=max_z + 1)
                n_crystals += len(idx)
                if bar is not None:
                    bar.update(len(idx))
    finally:
        if bar is not None:
            bar.close()
        model.train(was_training)
    if sums is None:
        raise ValueError("the graph cache is empty: no element vectors to extract")
    present = (weights > 0).cpu()
    mean = (sums / weights.clamp(min=1e-12).unsqueeze(1)).cpu()
    mean = torch.nn.functional.normalize(mean, dim=1).float().numpy()
    vectors = {element_symbol(z): mean[z] for z in range(1, max_z + 1) if bool(present[z])}
    covered = getattr(getattr(model, "input", None), "covered", None)
    absent = []
    if covered is not None:
        absent = [
            element_symbol(z)
            for z in range(1, min(max_z + 1, covered.numel()))
            if bool(covered[z]) and not bool(present[z])
        ]
    return {
        "vectors": vectors,
        "counts": {
            element_symbol(z): int(counts[z]) for z in range(1, max_z + 1) if bool(present[z])
        },
        "weights": {
            element_symbol(z): round(float(weights[z]), 6)
            for z in range(1, max_z + 1)
            if bool(present[z])
        },
        "absent": absent,
        "num_crystals": n_crystals,
    }
