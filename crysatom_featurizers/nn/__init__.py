"""Small torch modules for crystal graphs: distance expansion, element lookup, CGCNN, ALIGNN,
pretraining heads and self-supervised losses. Needs the [gnn] extra (torch, torch-geometric)."""

from crysatom_featurizers.deps import require_gnn

require_gnn("crysatom_featurizers.nn")

# ruff: noqa: E402  (the dependency check above runs before the torch imports)
from crysatom_featurizers.nn.alignn import ALIGNN, ALIGNN_PRESETS
from crysatom_featurizers.nn.element_vectors import element_embedding_from_model
from crysatom_featurizers.nn.encoder import CGCNNEncoder
from crysatom_featurizers.nn.heads import (
    ConnectivityReconstructionHead,
    FeatureReconstructionHead,
    ProjectionHead,
)
from crysatom_featurizers.nn.layers import (
    CGCNNConv,
    ElementEmbeddingLayer,
    GaussianExpansion,
    check_covered,
    uniform_neighbors,
)
from crysatom_featurizers.nn.models import CGCNN
from crysatom_featurizers.nn.pretrained import (
    EncoderFileError,
    available_encoders,
    load_encoder,
    save_encoder,
)
from crysatom_featurizers.nn.ssl import barlow_twins_loss, nt_xent_loss, vicreg_loss
from crysatom_featurizers.nn.transformer import CrystalTransformer

__all__ = [
    "ALIGNN",
    "ALIGNN_PRESETS",
    "CGCNN",
    "CGCNNConv",
    "CGCNNEncoder",
    "CrystalTransformer",
    "EncoderFileError",
    "ElementEmbeddingLayer",
    "GaussianExpansion",
    "check_covered",
    "element_embedding_from_model",
    "available_encoders",
    "load_encoder",
    "save_encoder",
    "uniform_neighbors",
    # pretraining heads and SSL losses (CrysAtom Section 3.2)
    "ConnectivityReconstructionHead",
    "FeatureReconstructionHead",
    "ProjectionHead",
    "barlow_twins_loss",
    "nt_xent_loss",
    "vicreg_loss",
]
