"""A third graph network, defined outside the library: a network module and an estimator module
in one file, joined to the package through the network registry alone.

``MeanFieldNet`` maps element vectors to a width, adds ``rounds`` of edge-gated neighbour means
(``h_i += silu(mean_j sigmoid(G e_ij) * W h_j)``), mean-pools the sites and reads out linearly.
It is small, but it is a real network: it trains, and distils like the package's own.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from sklearn.base import RegressorMixin
from torch import nn
from torch_geometric.nn import global_mean_pool
from torch_geometric.utils import scatter

from crysatom_featurizers.estimators import register_estimator
from crysatom_featurizers.estimators._base import _GraphEstimator
from crysatom_featurizers.estimators._tasks import _RegressionTask
from crysatom_featurizers.estimators._transfer import Transfer, check_transfer_params
from crysatom_featurizers.graphs import CGCNN_GRAPH, GraphSettings
from crysatom_featurizers.nn import ElementEmbeddingLayer, GaussianExpansion
from crysatom_featurizers.nn.layers import edge_features

# ---- the network module ----------------------------------------------------------------------


class MeanFieldNet(nn.Module):
    """Element vectors, ``rounds`` edge-gated neighbour means, mean pooling, a linear readout."""

    def __init__(
        self,
        embedding: Any,
        width: int = 16,
        rounds: int = 1,
        n_targets: int = 1,
        trainable_embeddings: bool = False,
        graph: GraphSettings = CGCNN_GRAPH,
    ) -> None:
        super().__init__()
        self.embedding = ElementEmbeddingLayer(embedding, trainable=trainable_embeddings)
        self.graph = graph
        self.distance_expansion = GaussianExpansion.from_settings(graph)
        self.input = nn.Linear(self.embedding.dim, width)
        self.gates = nn.ModuleList(
            nn.Linear(self.distance_expansion.num_gaussians, width) for _ in range(rounds)
        )
        self.mixes = nn.ModuleList(nn.Linear(width, width) for _ in range(rounds))
        self.fc_out = nn.Linear(width, n_targets)

    @property
    def node_dim(self) -> int:
        return int(self.input.out_features)

    @property
    def num_node_layers(self) -> int:
        return len(self.gates) + 1

    def encode_layers(self, batch: Any) -> list[torch.Tensor]:
        h = self.input(self.embedding(batch))
        layers = [h]
        src, dst = batch.edge_index
        edges = edge_features(batch, self.distance_expansion)
        for gate, mix in zip(self.gates, self.mixes):
            message = torch.sigmoid(gate(edges)) * mix(h)[src]
            h = h + nn.functional.silu(scatter(message, dst, 0, h.shape[0], reduce="mean"))
            layers.append(h)
        return layers

    def pool(self, batch: Any, nodes: torch.Tensor) -> torch.Tensor:
        return global_mean_pool(nodes, batch.batch, int(batch.num_graphs))

    def head(self, crystal: torch.Tensor) -> torch.Tensor:
        return self.fc_out(crystal)

    def forward(self, batch: Any) -> torch.Tensor:
        return self.head(self.pool(batch, self.encode_layers(batch)[-1]))

    def config(self) -> dict[str, Any]:
        return {
            "width": self.node_dim,
            "rounds": len(self.gates),
            "n_targets": int(self.fc_out.out_features),
            "trainable_embeddings": bool(self.embedding.trainable),
            "graph": self.graph.as_dict(),
        }

    @classmethod
    def from_config(cls, embedding: Any, config: dict[str, Any]) -> MeanFieldNet:
        config = dict(config)
        graph = GraphSettings.from_dict(config.pop("graph", {}))
        return cls(embedding, graph=graph, **config)


# ---- the estimator module --------------------------------------------------------------------


class _MeanFieldBase(_GraphEstimator):
    _description = "MeanField: edge-gated neighbour means (a network registered by a test)"
    finetune = None
    freeze_encoder_epochs = 0
    encoder_lr = None

    def _check_model_params(self) -> None:
        self._positive_int("width")
        self._positive_int("rounds", 0)
        check_transfer_params(self, int(self.rounds))

    def _network_type(self) -> type:
        return MeanFieldNet

    def _check_network_config(self, config: dict[str, Any], state: dict[str, Any]) -> None:
        expected = {
            "width": int(state["input.weight"].shape[0]),
            "rounds": len({k.split(".")[1] for k in state if k.startswith("gates.")}),
            "n_targets": int(state["fc_out.weight"].shape[0]),
        }
        for name, value in expected.items():
            if config.get(name) != value:
                raise ValueError(f"{name}={config.get(name)!r} but the weights have {value}")

    def _build_model(self, embedding: Any, n_outputs: int, transfer: Transfer | None) -> Any:
        return MeanFieldNet(
            embedding,
            width=int(self.width),
            rounds=int(self.rounds),
            n_targets=int(n_outputs),
            trainable_embeddings=bool(self.trainable_embeddings),
            graph=self.graph_settings(),
        )


@register_estimator("meanfield")
class MeanFieldRegressor(RegressorMixin, _RegressionTask, _MeanFieldBase):
    """Property regressor on :class:`MeanFieldNet`."""

    def __init__(
        self,
        embedding: Any = None,
        *,
        dim: int | None = None,
        trainable_embeddings: bool = False,
        width: int = 16,
        rounds: int = 1,
        distill: str | os.PathLike | None = None,
        distill_delta: float = 0.5,
        distill_layer: int = -1,
        radius: float = CGCNN_GRAPH.radius,
        max_neighbors: int = 12,
        allow_isolated: bool = False,
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        lr_schedule: str = "constant",
        lr_milestones: Any = None,
        validation_fraction: float | None = 0.1,
        patience: int | None = None,
        standardize_target: bool = True,
        device: str = "auto",
        random_state: Any = None,
        num_workers: int = 0,
        n_threads: int | None = None,
        verbose: int = 0,
        checkpoint: str | os.PathLike | None = None,
    ) -> None:
        self._store_params(locals())
