"""Decoder and projection heads used by CrysAtom pretraining (paper Section 3.2).

* :class:`FeatureReconstructionHead` -- L_FR, reconstruct the input node features (Eq. 2-3).
* :class:`ConnectivityReconstructionHead` -- L_CR, predict the capped number of edges between
  every ordered pair of nodes of a crystal (Eq. 4-5).
* :class:`ProjectionHead` -- projector applied to pooled crystal embeddings before the SSL loss.

Both decoders L2-normalise the node embeddings first, as the reference implementation does.
All heads work on a whole batch at once; there is no Python loop over crystals.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "FeatureReconstructionHead",
    "ConnectivityReconstructionHead",
    "ProjectionHead",
    "pair_edge_counts",
]


class FeatureReconstructionHead(nn.Module):
    """Linear map from node embeddings to input-feature logits, with a BCE loss.

    Parameters
    ----------
    dim : int
        Node embedding size.
    feature_dim : int, default 92
        Size of the input node features (92 for the CGCNN one-hot scheme).
    normalize : bool, default True
        L2-normalise node embeddings before the linear map.
    reduction : {"node", "element"}, default "node"
        ``"node"``: BCE summed over the features of a node and averaged over nodes, as the dot
        products of paper Eq. 3 read; ``"element"``: averaged over every (node, feature) entry
        (``BCEWithLogitsLoss``' default), which makes the term ``feature_dim`` times smaller.
    """

    def __init__(
        self, dim: int, feature_dim: int = 92, normalize: bool = True, reduction: str = "node"
    ) -> None:
        super().__init__()
        if reduction not in ("node", "element"):
            raise ValueError(f"reduction must be 'node' or 'element', got {reduction!r}")
        self.linear = nn.Linear(dim, feature_dim)
        self.normalize = normalize
        self.reduction = reduction

    def forward(self, x: Tensor) -> Tensor:
        """Return logits of shape ``(N, feature_dim)``."""
        if self.normalize:
            x = F.normalize(x, dim=-1)
        return self.linear(x)

    def loss_sum(self, x: Tensor, target: Tensor) -> tuple[Tensor, int]:
        """Summed binary cross-entropy and its normaliser (nodes or node-feature entries).

        ``loss_sum / count`` is the loss; the split lets distributed training normalise by the
        global count.
        """
        logits = self(x)
        loss = F.binary_cross_entropy_with_logits(logits, target, reduction="sum")
        return loss, (target.shape[0] if self.reduction == "node" else target.numel())

    def loss(self, x: Tensor, target: Tensor) -> Tensor:
        """Binary cross-entropy between reconstructed and input features (targets in [0, 1])."""
        total, count = self.loss_sum(x, target)
        return total / max(count, 1)


def _pair_layout(counts: Tensor) -> tuple[Tensor, Tensor]:
    """Offsets of each crystal's block of ``n_c**2`` ordered pairs, and the total pair count."""
    sq = counts * counts
    offsets = torch.zeros_like(counts)
    if counts.numel() > 1:
        offsets[1:] = torch.cumsum(sq, 0)[:-1]
    return offsets, sq.sum()


def pair_edge_counts(edge_index: Tensor, batch: Tensor, ptr: Tensor, max_count: int = 5) -> Tensor:
    """Number of edges from ``v`` into ``u`` for every ordered pair of every crystal, capped.

    Pairs are flattened crystal by crystal, row-major in ``(u, v)``: pair
    ``offset[c] + u_local * n_c + v_local``.

    Parameters
    ----------
    edge_index : LongTensor, shape (2, E)
        ``edge_index[0]`` is the neighbour (source) ``v``, ``edge_index[1]`` the centre ``u``.
    batch : LongTensor, shape (N,)
        Crystal index of each node.
    ptr : LongTensor, shape (B + 1,)
        Node offsets of the crystals.
    max_count : int, default 5
        Counts above this are capped (periodic images make multigraphs).

    Returns
    -------
    LongTensor, shape (sum_c n_c**2,)
    """
    counts = ptr[1:] - ptr[:-1]
    offsets, total = _pair_layout(counts)
    src, dst = edge_index[0], edge_index[1]
    crystal = batch[dst]
    start = ptr[crystal]
    flat = offsets[crystal] + (dst - start) * counts[crystal] + (src - start)
    n_uv = torch.bincount(flat, minlength=int(total))
    return n_uv.clamp_(max=max_count)


class ConnectivityReconstructionHead(nn.Module):
    """Bilinear pair scorer predicting the capped edge count ``n_uv`` in {0, ..., num_classes-1}.

    For every ordered node pair ``(u, v)`` of a crystal, including ``u == v``, the head computes
    ``h_k = x_u^T W_k x_v + b_k`` (k = 1..``hidden``), applies a sigmoid (paper Eq. 4), then a
    small feed-forward net gives ``num_classes`` logits (Eq. 5).

    The bilinear form is evaluated as batched matrix products: crystals are grouped into buckets
    of similar size, padded within a bucket, and ``(X W) X^T`` is one ``bmm`` per bucket. The
    number of buckets is logarithmic in the size range, so the cost is close to
    ``sum_c n_c**2 * hidden * dim`` without a per-crystal loop.

    Parameters
    ----------
    dim : int
        Node embedding size.
    hidden : int, default 16
        Output size of the bilinear layer.
    num_classes : int, default 6
        Edge-count classes (0..5 with the default cap of 5).
    class_weights : sequence of float, optional
        Defaults to ``[0.1, 1, 1, 1, 1, 1]`` (class 0, "no edge", down-weighted as in the
        reference).
    normalize : bool, default True
        L2-normalise node embeddings first.
    bucket_growth : float, default 1.25
        Crystals whose sizes differ by less than this factor share a padded bucket.
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 16,
        num_classes: int = 6,
        class_weights: list[float] | None = None,
        normalize: bool = True,
        bucket_growth: float = 1.25,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.hidden = hidden
        self.num_classes = num_classes
        self.normalize = normalize
        self.bucket_growth = bucket_growth
        bound = 1.0 / dim**0.5
        self.weight = nn.Parameter(torch.empty(dim, hidden, dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(hidden).uniform_(-bound, bound))
        self.ffn = nn.Sequential(
            nn.Linear(hidden, hidden), nn.Softplus(), nn.Linear(hidden, num_classes)
        )
        if class_weights is None:
            class_weights = [0.1] + [1.0] * (num_classes - 1)
        if len(class_weights) != num_classes:
            raise ValueError(
                f"class_weights must have {num_classes} entries, got {len(class_weights)}"
            )
        self.register_buffer("class_weights", torch.tensor(class_weights, dtype=torch.float32))

    def _buckets(self, counts: Tensor) -> list[Tensor]:
        """Group crystal indices by size so that padding wastes at most ``bucket_growth**2``."""
        level = torch.floor(
            torch.log(counts.clamp(min=1).double()) / torch.log(torch.tensor(self.bucket_growth))
        ).long()
        order = torch.argsort(level, stable=True)
        uniq, sizes = torch.unique_consecutive(level[order], return_counts=True)
        return list(torch.split(order, sizes.tolist()))

    def forward(self, x: Tensor, ptr: Tensor) -> tuple[Tensor, Tensor]:
        """Logits for all ordered pairs.

        Parameters
        ----------
        x : Tensor, shape (N, dim)
            Node embeddings of the batch, crystal by crystal.
        ptr : LongTensor, shape (B + 1,)
            Node offsets of the crystals.

        Returns
        -------
        logits : Tensor, shape (P, num_classes)
            One row per ordered pair, in bucket order.
        pair_index : LongTensor, shape (P,)
            The flat pair id of each row (layout of :func:`pair_edge_counts`).
        """
        if self.normalize:
            x = F.normalize(x, dim=-1)
        counts = ptr[1:] - ptr[:-1]
        offsets, _ = _pair_layout(counts)
        w = self.weight.reshape(self.dim, self.hidden * self.dim)
        out_rows, out_ids = [], []
        for crystals in self._buckets(counts):
            n_c = counts[crystals]
            n_max = int(n_c.max())
            b = crystals.numel()
            # padded node positions: (b, n_max) -> global node index, valid mask
            local = torch.arange(n_max, device=x.device)
            valid = local.unsqueeze(0) < n_c.unsqueeze(1)
            node = (ptr[crystals].unsqueeze(1) + local.unsqueeze(0)).clamp(max=x.shape[0] - 1)
            node = torch.where(valid, node, torch.zeros_like(node))
            xv = x[node] * valid.unsqueeze(-1)  # (b, n_max, dim)
            # (x_u W_k) for every padded node: (b, n_max * hidden, dim)
            xwu = (xv.reshape(b * n_max, self.dim) @ w).view(b, n_max * self.hidden, self.dim)
            # scores[b, u, k, v] = sum_d (x_u W_k)[d] * x_v[d]
            scores = torch.bmm(xwu, xv.transpose(1, 2))
            scores = scores.view(b, n_max, self.hidden, n_max).transpose(2, 3)  # (b, u, v, k)
            pair_valid = valid.unsqueeze(2) & valid.unsqueeze(1)  # (b, u, v)
            out_rows.append(scores[pair_valid])
            ids = (
                offsets[crystals].view(b, 1, 1)
                + local.view(1, n_max, 1) * n_c.view(b, 1, 1)
                + local.view(1, 1, n_max)
            )
            out_ids.append(ids[pair_valid])
        h = torch.sigmoid(torch.cat(out_rows) + self.bias)
        return self.ffn(h), torch.cat(out_ids)

    def loss_sum(
        self, x: Tensor, edge_index: Tensor, batch: Tensor, ptr: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Class-weighted NLL summed over pairs, and the summed weight (its normaliser)."""
        logits, pair_index = self(x, ptr)
        target = pair_edge_counts(edge_index, batch, ptr, self.num_classes - 1)[pair_index]
        logp = F.log_softmax(logits, dim=-1)
        nll = F.nll_loss(logp, target, weight=self.class_weights, reduction="sum")
        return nll, self.class_weights[target].sum()

    def loss(self, x: Tensor, edge_index: Tensor, batch: Tensor, ptr: Tensor) -> Tensor:
        """Class-weighted mean NLL over all ordered pairs of all crystals."""
        total, norm = self.loss_sum(x, edge_index, batch, ptr)
        return total / norm.clamp(min=1e-12)


class ProjectionHead(nn.Module):
    """Projector for crystal embeddings: Linear-softplus-Linear-softplus-Linear.

    Parameters
    ----------
    dim : int
        Crystal embedding size.
    hidden : int, default 128
        Hidden and output size (128 in the reference).
    """

    def __init__(self, dim: int, hidden: int = 128, out_dim: int | None = None) -> None:
        super().__init__()
        out_dim = hidden if out_dim is None else out_dim
        self.net = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.Softplus(),
            nn.Linear(hidden, hidden),
            nn.Softplus(),
            nn.Linear(hidden, out_dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
