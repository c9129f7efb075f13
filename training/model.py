"""The CrysAtom pretraining model: library encoder plus decoder, projector and SSL loss.

``CrysAtomPretrainer`` only composes library modules
(:mod:`crysatom_featurizers.nn`): frozen element input features -> ``CGCNNEncoder`` ->
``FeatureReconstructionHead`` (L_FR), ``ConnectivityReconstructionHead`` (L_CR) and, on two
augmented views, mean pooling -> ``ProjectionHead`` -> SSL loss (L_BT by default).

The forward pass returns *sums* of the reconstruction losses and their normalisers rather than
means, so that distributed training can normalise by global counts and reproduce the
single-process loss of the same global batch.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.nn import global_mean_pool

from crysatom_featurizers.graphs import GraphBatch
from crysatom_featurizers.nn import CGCNNEncoder, ElementEmbeddingLayer, GaussianExpansion
from crysatom_featurizers.nn.heads import (
    ConnectivityReconstructionHead,
    FeatureReconstructionHead,
    ProjectionHead,
)
from crysatom_featurizers.nn.ssl import barlow_twins_loss, nt_xent_loss, vicreg_loss
from training.augment import atom_masking, edge_masking
from training.config import PretrainConfig


def _check_compiler() -> None:
    """TorchInductor builds C++ kernels on CPU: fail before training, not at the first batch."""
    if torch.cuda.is_available():
        return
    candidates = [os.environ.get("CXX"), "g++", "c++", "clang++"]
    if not any(c and shutil.which(c) for c in candidates):
        raise RuntimeError(
            "compile_convs needs a C++ compiler on CPU (g++, c++ or clang++ on PATH, or CXX); "
            "install one or set compile_convs: false"
        )


class CrysAtomPretrainer(nn.Module):
    """Encoder, decoders and projector of CrysAtom (paper Section 3.2, Figure 4).

    Parameters
    ----------
    cfg : PretrainConfig
        Uses ``dim``, ``num_layers``, ``input_embedding``, graph and loss settings.
    embedding : ElementEmbedding or str, optional
        Input features; defaults to ``cfg.input_embedding`` (the CGCNN 92-dim one-hot table).
    """

    def __init__(self, cfg: PretrainConfig, embedding: Any = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.input = ElementEmbeddingLayer(
            embedding if embedding is not None else cfg.input_embedding, trainable=False
        )
        self.expansion = GaussianExpansion(0.0, cfg.radius, cfg.gaussian_step, cfg.gaussian_width)
        self.encoder = CGCNNEncoder(
            self.input.dim,
            cfg.dim,
            cfg.num_layers,
            edge_dim=self.expansion.num_gaussians,
            batch_norm=cfg.batch_norm,
            outer_softplus=cfg.outer_softplus,
            checkpoint_convs=cfg.activation_checkpointing,
        )
        if cfg.compile_convs:
            _check_compiler()
            for conv in self.encoder.convs:
                # in place, so parameter names and checkpoints are those of the eager model
                conv.compile(dynamic=True)
        self.feature_head = FeatureReconstructionHead(
            cfg.dim, self.input.dim, reduction=cfg.fr_reduction
        )
        self.connectivity_head = ConnectivityReconstructionHead(
            cfg.dim,
            hidden=cfg.connectivity_hidden,
            num_classes=cfg.max_edge_count + 1,
        )
        self.projector = ProjectionHead(cfg.dim, cfg.projection_dim) if cfg.ssl != "none" else None

    def encode(self, batch: GraphBatch, x0: Tensor | None = None) -> Tensor:
        """Final node embeddings ``Float[N, dim]``."""
        if x0 is None:
            x0 = self.input(batch)
        return self.encoder(x0, batch.edge_index, self.expansion(batch.edge_dist))

    def ssl_loss(self, z1: Tensor, z2: Tensor) -> Tensor:
        if self.cfg.ssl == "bt":
            return barlow_twins_loss(z1, z2, self.cfg.bt_lambda)
        if self.cfg.ssl == "vicreg":
            return vicreg_loss(z1, z2)
        if self.cfg.ssl == "ntxent":
            return nt_xent_loss(z1, z2, self.cfg.ntxent_temperature)
        raise ValueError(f"no SSL loss for ssl={self.cfg.ssl!r}")

    def forward(self, batch: GraphBatch, salt: int = 0, part: str = "all") -> dict[str, Tensor]:
        """Loss sums of one (local) batch.

        ``salt`` seeds the augmentations (hashed per crystal row and site, so the views of a
        crystal do not depend on the batch or rank it lands in). ``part`` selects the
        reconstruction terms (``"ul"``), the SSL views (``"ssl"``) or both (``"all"``); running
        the two parts with a backward pass in between keeps only two encoder passes in memory.

        Returns
        -------
        dict
            ``fr_sum``, ``fr_count`` (BCE terms), ``cr_sum``, ``cr_weight`` (class-weighted NLL
            and summed weights) and, with SSL, ``z1``, ``z2`` (projections of the two views).
        """
        out: dict[str, Tensor] = {}
        if part in ("all", "ul"):
            out.update(self._reconstruction(batch))
        if part in ("all", "ssl") and self.projector is not None:
            out["z1"] = self.view_projection(batch, salt, 1)
            out["z2"] = self.view_projection(batch, salt, 2)
        return out

    def view_projection(self, batch: GraphBatch, salt: int, view: int) -> Tensor:
        """Projected mean-pooled embedding ``Float[B, proj]`` of augmented view 1 or 2.

        View 1 is atom masking, view 2 edge masking (paper Section 3.2, "SSL framework").
        """
        if view == 1:
            v = atom_masking(batch, self.cfg.atom_mask_ratio, salt=2 * salt)
        elif view == 2:
            v = edge_masking(batch, self.cfg.edge_mask_ratio, salt=2 * salt + 1)
        else:
            raise ValueError(f"view must be 1 or 2, got {view}")
        return self.projector(global_mean_pool(self.encode(v), v.batch, batch.num_graphs))

    def _reconstruction(self, batch: GraphBatch) -> dict[str, Tensor]:
        x0 = self.input(batch)
        h = self.encode(batch, x0)
        fr_sum, fr_count = self.feature_head.loss_sum(h, x0.clamp(0.0, 1.0))
        cr_sum, cr_weight = self.connectivity_head.loss_sum(
            h, batch.edge_index, batch.batch, batch.ptr
        )
        return {
            "fr_sum": fr_sum,
            "fr_count": torch.tensor(float(fr_count)),
            "cr_sum": cr_sum,
            "cr_weight": cr_weight.detach(),
        }
