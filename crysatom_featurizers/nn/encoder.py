"""The CGCNN convolution stack, shared by the property model and the pretraining code."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from crysatom_featurizers.nn.layers import CGCNNConv, uniform_neighbors

__all__ = ["CGCNNEncoder"]


class CGCNNEncoder(nn.Module):
    """Linear input map followed by ``num_layers`` CGCNN gated convolutions.

    This is the node encoder of CGCNN and of CrysAtom pretraining (paper Table 2: 5 layers,
    hidden size 200, input the 92-dim CGCNN features).

    Parameters
    ----------
    in_dim : int
        Size of the input node vectors.
    hidden_dim : int
        Node embedding size.
    num_layers : int
        Number of :class:`CGCNNConv` layers (0 gives just the linear map).
    edge_dim : int
        Edge feature size (41 Gaussians for the default expansion).
    batch_norm, outer_softplus : bool
        Passed to every :class:`CGCNNConv`.
    checkpoint_convs : bool
        Activation checkpointing in training: each convolution keeps only its input and
        recomputes its edge-level activations during backward (``torch.utils.checkpoint``).
        Same gradients and BatchNorm running statistics, a fraction of the activation memory,
        about one extra forward pass of compute.

    Notes
    -----
    **Tensor shapes.**

    ``x: Float[N, in_dim]``, ``edge_index: Long[2, E]``, ``edge_attr: Float[E, edge_dim]``
    -> ``Float[N, hidden_dim]``.

    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        num_layers: int,
        edge_dim: int = 41,
        batch_norm: bool = True,
        outer_softplus: bool = True,
        checkpoint_convs: bool = False,
    ) -> None:
        super().__init__()
        self.checkpoint_convs = bool(checkpoint_convs)
        if num_layers < 0:
            raise ValueError(f"num_layers must be non-negative, got {num_layers}")
        self.in_dim = int(in_dim)
        self.hidden_dim = int(hidden_dim)
        self.edge_dim = int(edge_dim)
        self.input = nn.Linear(in_dim, hidden_dim)
        self.convs = nn.ModuleList(
            CGCNNConv(hidden_dim, edge_dim, batch_norm=batch_norm, outer_softplus=outer_softplus)
            for _ in range(num_layers)
        )

    @property
    def num_layers(self) -> int:
        return len(self.convs)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        return self.forward_layers(x, edge_index, edge_attr)[-1]

    def forward_layers(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> list[Tensor]:
        """Node embeddings after the input map and after each convolution.

        Returns ``num_layers + 1`` tensors ``Float[N, hidden_dim]``: entry 0 is the output of
        the input map, entry ``k`` the output of the ``k``-th convolution (the last entry is
        what :meth:`forward` returns).
        """
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"expected node features of size {self.in_dim}, got {x.shape[-1]}")
        if edge_attr.shape[-1] != self.edge_dim:
            raise ValueError(
                f"expected edge features of size {self.edge_dim}, got {edge_attr.shape[-1]} "
                "(check the Gaussian expansion settings of the graphs)"
            )
        h = self.input(x)
        layers = [h]
        k = uniform_neighbors(edge_index, h.shape[0]) if len(self.convs) else None
        recompute = self.checkpoint_convs and self.training and torch.is_grad_enabled()
        for conv in self.convs:
            if recompute:
                h = _checkpointed(conv, h, edge_index, edge_attr, k)
            else:
                h = conv(h, edge_index, edge_attr, k)
            layers.append(h)
        return layers


def _checkpointed(
    conv: nn.Module, h: Tensor, edge_index: Tensor, edge_attr: Tensor, k: int | None
) -> Tensor:
    """``conv(h, ...)`` under activation checkpointing; the backward-time recomputation leaves
    BatchNorm running statistics untouched (they were updated by the forward pass)."""
    calls = [0]

    def run(h_in: Tensor) -> Tensor:
        calls[0] += 1
        guard = frozen_running_stats(conv) if calls[0] > 1 else contextlib.nullcontext()
        with guard:
            return conv(h_in, edge_index, edge_attr, k)

    return checkpoint(run, h, use_reentrant=False)


@contextlib.contextmanager
def frozen_running_stats(module: nn.Module) -> Iterator[None]:
    """Batch statistics still normalise, but running mean/var and counters stay as they are."""
    saved = [
        (bn, bn.momentum, bn.num_batches_tracked.clone())
        for bn in module.modules()
        if isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.track_running_stats
    ]
    try:
        for bn, _, _ in saved:
            bn.momentum = 0.0
        yield
    finally:
        for bn, momentum, count in saved:
            bn.momentum = momentum
            bn.num_batches_tracked.copy_(count)
