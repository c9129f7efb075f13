"""A universal interatomic potential's per-site vectors on crystal graphs.

The packed field ``site_features`` (``Float[N, d]``, one row per site, in site order) holds the
frozen latent vectors of a potential (CHGNet, SevenNet; see
:mod:`crysatom_featurizers.potentials`) for the nodes of each graph. A graph network reads
them as node inputs (the ``site_features`` parameter of the graph estimators), and
distillation from a potential (``distill="chgnet"``) reads them as the teacher's node
embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from crysatom_featurizers.graphs.packing import PackedField, register_packed_field

__all__ = ["SITE_FEATURES", "attach_site_features"]

SITE_FEATURES = register_packed_field(
    PackedField("site_features", "nodes", torch.float32, torch.float32)
)


def attach_site_features(
    graphs: Sequence[Any],
    structures: Sequence[Any],
    labels: Sequence[Any],
    potential: str,
    *,
    n_threads: int | None = None,
    progress: bool = False,
    allow_isolated: bool = False,
) -> None:
    """Set ``graph.site_features`` of each graph to the potential's vectors of its structure.

    Parameters
    ----------
    graphs : sequence of torch_geometric.data.Data
        Graphs of ``structures``, one node per site, in site order.
    structures : sequence of Structure
        The structures the graphs were built from.
    labels : sequence
        Row labels, for error messages.
    potential : str
        A potential's name (:data:`crysatom_featurizers.potentials.POTENTIALS`). Its results
        are cached by structure, so a crystal is evaluated once per process.
    n_threads : int, optional
        torch threads of the inference (restored afterwards).
    progress : bool, default=False
        Show a progress bar.
    allow_isolated : bool, default=False
        Let the potential evaluate structures with a site that has no neighbour within its
        cutoff (CHGNet: 6 Å), as the graphs keep isolated sites with ``allow_isolated``.

    Raises
    ------
    ImportError
        If the potential's package is not installed (the message names the extra).
    ValueError
        If the potential cannot evaluate a structure (disordered sites, elements outside its
        table); the message names the first such row and how many there are.
    """
    from crysatom_featurizers.potentials import get_potential

    model = get_potential(potential)
    results, errors = model.predict(
        list(structures),
        n_threads=n_threads,
        pbar=progress,
        desc=f"{potential} site vectors",
        allow_isolated=allow_isolated,
    )
    if errors:
        first = min(errors)
        raise ValueError(
            f"the structure at row {labels[first]!r}: {errors[first]} ({len(errors)} "
            f"structure(s) that the {potential} potential cannot evaluate)"
        )
    for graph, result, label in zip(graphs, results, labels):
        vectors = np.asarray(result.site_features, dtype=np.float32)
        if vectors.shape[0] != int(graph.num_nodes):
            raise ValueError(
                f"the structure at row {label!r} has {vectors.shape[0]} site vectors for "
                f"{int(graph.num_nodes)} graph nodes"
            )
        graph.site_features = torch.from_numpy(vectors.copy())
