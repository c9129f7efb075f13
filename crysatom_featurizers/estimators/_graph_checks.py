"""Checks of crystal graphs given to a graph estimator as input (not public API)."""

from __future__ import annotations

from typing import Any

from crysatom_featurizers.graphs import GraphSettings


def graph_settings_error(label: Any, detail: str, settings: GraphSettings) -> ValueError:
    return ValueError(
        f"the graph at row {label!r} does not match the estimator's graph settings "
        f"(radius={settings.radius} Å, max_neighbors={settings.max_neighbors}): {detail}. Build "
        "the graphs with CrystalGraphTransformer(radius=..., max_neighbors=...) set to the "
        "estimator's values"
    )


def check_graph(g: Any, label: Any, settings: GraphSettings, *, expansion: bool = True) -> None:
    """Reject graphs built with other neighbour settings than the estimator's (those recorded
    on the graph, else what its edges show) and, with ``expansion``, another number of
    Gaussian edge features."""
    import torch

    if getattr(g, "edge_index", None) is None or getattr(g, "edge_dist", None) is None:
        raise ValueError(
            f"the graph at row {label!r} lacks edge_index or edge_dist; build graphs with "
            "crysatom_featurizers.graphs.structures_to_graph or CrystalGraphTransformer"
        )
    built = getattr(g, "graph_settings", None)
    if isinstance(built, GraphSettings):
        differs = [
            f"{name}={getattr(built, name)!r}"
            for name in ("radius", "max_neighbors", "symmetric")
            if getattr(built, name) != getattr(settings, name)
        ]
        if differs:
            raise graph_settings_error(label, f"it was built with {', '.join(differs)}", settings)
    else:  # no record: judge the graph by its edges
        dist = g.edge_dist
        if dist.numel() and float(dist.max()) > settings.radius + 1e-4:
            raise graph_settings_error(
                label, f"it has an edge of length {float(dist.max()):.3f} Å", settings
            )
        max_neighbors = settings.max_neighbors
        if max_neighbors is not None and dist.numel() and not settings.symmetric:
            degree = torch.bincount(g.edge_index[1], minlength=int(g.num_nodes))
            if int(degree.max()) > max_neighbors:
                raise graph_settings_error(
                    label, f"a site has {int(degree.max())} neighbours", settings
                )
    edge_attr = getattr(g, "edge_attr", None)
    n_centres = settings.num_gaussians
    if expansion and edge_attr is not None and edge_attr.shape[-1] != n_centres:
        raise graph_settings_error(
            label,
            f"its edges carry {edge_attr.shape[-1]} Gaussian features, the estimator expects "
            f"{n_centres}",
            settings,
        )


def both_ways(edge_index: Any, edge_vec: Any) -> bool:
    """Whether every bond ``j -> i`` (vector ``v``) has its reverse ``i -> j`` (``-v``)."""
    import numpy as np

    index = edge_index.numpy()
    cells = np.rint(edge_vec.numpy().astype(np.float64) * 1e3).astype(np.int64)  # 0.001 Å
    forward = np.column_stack([index[0], index[1], cells])
    backward = np.column_stack([index[1], index[0], -cells])
    return bool(np.array_equal(np.unique(forward, axis=0), np.unique(backward, axis=0)))
