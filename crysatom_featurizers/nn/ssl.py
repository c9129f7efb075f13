"""Self-supervised losses on two views of a batch (CrysAtom paper Section 3.2, Table 10).

All losses take projected embeddings ``z1, z2`` of shape ``(B, D)``, row ``b`` of each being a
view of the same crystal, and return a scalar tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["barlow_twins_loss", "vicreg_loss", "nt_xent_loss", "SSL_LOSSES"]


def _check_pair(z1: Tensor, z2: Tensor, min_batch: int = 2) -> None:
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(
            f"expected two (B, D) tensors of equal shape, got {tuple(z1.shape)} "
            f"and {tuple(z2.shape)}"
        )
    if z1.shape[0] < min_batch:
        raise ValueError(f"need a batch of at least {min_batch} rows, got {z1.shape[0]}")


def _standardize(z: Tensor, eps: float = 1e-5) -> Tensor:
    """Batch normalisation without affine parameters (biased variance, like BatchNorm1d)."""
    return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + eps)


def barlow_twins_loss(z1: Tensor, z2: Tensor, lambda_: float = 0.0051) -> Tensor:
    """Barlow Twins loss (Zbontar et al. 2021; CrysAtom Eq. 7-8).

    ``M = z1n^T z2n / B`` is the cross-correlation of the batch-standardised views;
    the loss is ``sum_i (1 - M_ii)^2 + lambda_ * sum_{i != j} M_ij^2``. Eq. 7 of the CrysAtom paper
    prints the invariance term as ``1 - M_ii^2``; the squared difference used here is the one of
    the original Barlow Twins paper that Eq. 7 cites.

    Parameters
    ----------
    z1, z2 : Tensor, shape (B, D)
    lambda_ : float, default 0.0051
        Weight of the redundancy-reduction term.
    """
    _check_pair(z1, z2)
    b = z1.shape[0]
    c = _standardize(z1).T @ _standardize(z2) / b
    diag = torch.diagonal(c)
    on_diag = (1.0 - diag).pow(2).sum()
    off_diag = c.pow(2).sum() - diag.pow(2).sum()
    return on_diag + lambda_ * off_diag


def vicreg_loss(
    z1: Tensor,
    z2: Tensor,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
    eps: float = 1e-4,
) -> Tensor:
    """VICReg loss (Bardes et al. 2022) with its standard coefficients 25 / 25 / 1.

    invariance = MSE(z1, z2); variance = mean hinge ``relu(1 - std)`` per dimension, for each view;
    covariance = squared off-diagonal covariance summed and divided by ``D``, for each view.
    """
    _check_pair(z1, z2)
    b, d = z1.shape
    invariance = F.mse_loss(z1, z2)
    variance = z1.new_zeros(())
    covariance = z1.new_zeros(())
    for z in (z1, z2):
        zc = z - z.mean(0)
        std = torch.sqrt(zc.var(0) + eps)
        variance = variance + F.relu(1.0 - std).mean() / 2
        cov = zc.T @ zc / (b - 1)
        off = cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()
        covariance = covariance + off / d
    return sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance


def nt_xent_loss(z1: Tensor, z2: Tensor, temperature: float = 0.1) -> Tensor:
    """NT-Xent (normalised temperature-scaled cross-entropy) loss of SimCLR (Chen et al. 2020).

    Each of the ``2B`` embeddings must pick its partner view among the other ``2B - 1`` by cosine
    similarity divided by ``temperature``; the loss is the mean cross-entropy.
    """
    _check_pair(z1, z2)
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=-1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, target)


#: name -> loss function, as selected by ``--ssl`` in pretraining.
SSL_LOSSES = {"bt": barlow_twins_loss, "vicreg": vicreg_loss, "ntxent": nt_xent_loss}
