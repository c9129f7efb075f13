"""CrysAtom element embeddings as matminer featurizers, and a scikit-learn CGCNN estimator.

Importing the package is cheap: the torch-based parts (graphs, nn, estimators) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it; resolved lazily so descriptor users never import torch.
_LAZY = {
    "ElementEmbedding": "crysatom_featurizers.embeddings",
    "load_embedding": "crysatom_featurizers.embeddings",
    "available_embeddings": "crysatom_featurizers.embeddings",
    "ElementEmbeddingSiteFeaturizer": "crysatom_featurizers.featurizers",
    "ElementEmbeddingCompositionFeaturizer": "crysatom_featurizers.featurizers",
    "ElementEmbeddingStructureFeaturizer": "crysatom_featurizers.featurizers",
    "CrysAtomSiteFeaturizer": "crysatom_featurizers.featurizers",
    "CrysAtomCompositionFeaturizer": "crysatom_featurizers.featurizers",
    "CrysAtomStructureFeaturizer": "crysatom_featurizers.featurizers",
    "CrystalGraphTransformer": "crysatom_featurizers.graphs",
    "CGCNNRegressor": "crysatom_featurizers.estimators",
    "CGCNNClassifier": "crysatom_featurizers.estimators",
    "ALIGNNRegressor": "crysatom_featurizers.estimators",
    "ALIGNNClassifier": "crysatom_featurizers.estimators",
}
# Names that need the [gnn] extra (torch, torch-geometric).
_GNN = {
    "CrystalGraphTransformer",
    "CGCNNRegressor",
    "CGCNNClassifier",
    "ALIGNNRegressor",
    "ALIGNNClassifier",
}
_ALIASES = {"load_embedding": "load", "available_embeddings": "available"}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        if name in _GNN:
            from crysatom_featurizers.deps import require_gnn

            require_gnn(name)
        module = importlib.import_module(_LAZY[name])
        return getattr(module, _ALIASES.get(name, name))
    raise AttributeError(f"module 'crysatom_featurizers' has no attribute {name!r}")
