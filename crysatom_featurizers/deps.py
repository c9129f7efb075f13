"""Optional dependencies: one clear message when the GNN extra is missing.

The descriptors (embeddings, featurizers, plots) need no torch. The graph, ``nn`` and
estimator modules, and ``training/``, need the ``[gnn]`` extra: torch and torch-geometric.
"""

from __future__ import annotations

import importlib

__all__ = ["GNN_INSTALL_HINT", "MissingGNNDependencyError", "require_gnn"]

GNN_INSTALL_HINT = (
    "pip install torch --index-url https://download.pytorch.org/whl/cpu && "
    "pip install 'crysatom-featurizers[gnn]' (torch first, from PyTorch's CPU index, so that "
    "pip does not pull the CUDA build; any torch >= 2.1 works)"
)


class MissingGNNDependencyError(ImportError):
    """torch or torch-geometric is not installed but a GNN part of the package was used."""


def require_gnn(feature: str) -> None:
    """Raise :class:`MissingGNNDependencyError` unless torch and torch-geometric import.

    Parameters
    ----------
    feature : str
        What needs them, for the message (e.g. ``"CGCNNRegressor"``).
    """
    for module in ("torch", "torch_geometric"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise MissingGNNDependencyError(
                f"{feature} needs the optional GNN dependencies ({module} is not installed: "
                f"{exc}); install them with: {GNN_INSTALL_HINT}"
            ) from None
