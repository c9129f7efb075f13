"""Crystal structures as CGCNN crystal graphs, and fast batching of many graphs.

* :mod:`~crysatom_featurizers.graphs.settings`: :class:`GraphSettings` and the default
  :data:`CGCNN_GRAPH` (cutoff radius, neighbours per site, Gaussian distance expansion).
* :mod:`~crysatom_featurizers.graphs.build`: Structure -> ``torch_geometric`` ``Data``
  (:func:`structure_to_graph`, :func:`structures_to_graphs`); the graph format is documented
  there.
* :mod:`~crysatom_featurizers.graphs.transformer`: :class:`CrystalGraphTransformer`, the
  scikit-learn step that builds the graphs.
* :mod:`~crysatom_featurizers.graphs.packing`: :class:`PackedGraphs`, many graphs as flat
  tensors from which :class:`GraphBatch` mini-batches are gathered.
* :mod:`~crysatom_featurizers.graphs.line_graph`: bond pairs and bond angles of packed graphs
  (:func:`add_line_graph`), for ALIGNN.
* :mod:`~crysatom_featurizers.graphs.atom_sets`: :class:`AtomSets`, crystals as sets of atoms
  with coordinates and minimum-image distances, batched with padding (for attention models).

Only the settings are imported eagerly; the torch-based names load on first use, so reading
:data:`CGCNN_GRAPH` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from crysatom_featurizers.graphs.settings import (
    ALIGNN_GRAPH,
    CGCNN_GRAPH,
    GraphSettings,
    alignn_graph,
    check_settings,
    gaussian_centers,
    gaussian_expand,
)

_LAZY = {
    "IsolatedSiteError": "build",
    "iter_structures": "build",
    "normalize_species_weights": "build",
    "prime_structure_caches": "build",
    "site_occupancies": "build",
    "structure_to_graph": "build",
    "structures_to_graphs": "build",
    "CrystalGraphTransformer": "transformer",
    "PACKED_KEYS": "packing",
    "GraphBatch": "packing",
    "PackedField": "packing",
    "PackedGraphs": "packing",
    "pack_graphs": "packing",
    "packed_fields": "packing",
    "register_packed_field": "packing",
    "add_line_graph": "line_graph",
    "bond_cosines": "line_graph",
    "line_graph_index": "line_graph",
    "SITE_FEATURES": "site_features",
    "attach_site_features": "site_features",
    "AtomSetBatch": "atom_sets",
    "AtomSets": "atom_sets",
}

__all__ = [
    "ALIGNN_GRAPH",
    "CGCNN_GRAPH",
    "GraphSettings",
    "alignn_graph",
    "check_settings",
    "gaussian_centers",
    "gaussian_expand",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from crysatom_featurizers.deps import require_gnn

        require_gnn(f"crysatom_featurizers.graphs.{name}")
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
