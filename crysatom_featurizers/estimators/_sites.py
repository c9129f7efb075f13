"""Universal-potential site vectors in the graph estimators: as node inputs
(``site_features``) and as the teacher of a distillation (``distill="chgnet"``). Not public
API."""

from __future__ import annotations

import os
from typing import Any


def potential_name(value: Any) -> str | None:
    """The potential a transfer or site parameter names (``"chgnet"``, ``"sevennet"``), or
    None for anything else (an encoder name or file)."""
    from crysatom_featurizers.potentials import POTENTIALS

    if isinstance(value, str) and os.path.sep not in value and value.strip().lower() in POTENTIALS:
        return value.strip().lower()
    return None


def check_site_params(est: Any) -> None:
    """Raise ``ValueError`` on a ``site_features`` value that cannot work."""
    value = getattr(est, "site_features", None)
    if value is None:
        return
    from crysatom_featurizers.potentials import check_potential_name

    try:
        check_potential_name(value)
    except ValueError as exc:
        raise ValueError(f"site_features: {exc}") from None
    if getattr(est, "finetune", None) is not None:
        raise ValueError(
            "finetune and site_features are alternatives: a fine-tuned encoder reads the element "
            "vectors it was trained on, not a potential's site vectors"
        )


def site_dim(est: Any) -> int:
    """Width of the site vectors the network reads (0: none)."""
    if getattr(est, "site_features", None) is None:
        return 0
    from crysatom_featurizers.potentials import potential_class

    return int(potential_class(est.site_features).site_dim)


def sites_needed(est: Any, for_fit: bool) -> str | None:
    """The potential whose site vectors the graphs must carry: the network's node inputs, or
    at ``fit`` the teacher of a distillation."""
    if getattr(est, "site_features", None) is not None:
        return str(est.site_features).strip().lower()
    if for_fit:
        return potential_name(getattr(est, "distill", None))
    return None


def coverage_table(potential: str) -> Any:
    """An element table that only says which elements ``potential`` evaluates (its vectors are
    not fed to the network: the site vectors replace them)."""
    import numpy as np

    from crysatom_featurizers.embeddings import ElementEmbedding
    from crysatom_featurizers.potentials import get_potential

    symbols = get_potential(potential).supported_elements()
    return ElementEmbedding(f"{potential} sites", symbols, np.ones((len(symbols), 1)))


def check_graph_sites(graph: Any, label: Any, potential: str, width: int) -> None:
    """Raise ``ValueError`` if an input graph lacks the potential's site vectors."""
    sites = getattr(graph, "site_features", None)
    if sites is None or sites.ndim != 2 or sites.shape != (int(graph.num_nodes), width):
        shape = None if sites is None else tuple(sites.shape)
        raise ValueError(
            f"the graph at row {label!r} needs the {potential} potential's site vectors "
            f"({int(graph.num_nodes)} x {width}) as site_features, it has {shape}; pass "
            f"Structures, or build the graphs with the estimator's graph_transformer()"
        )
