"""Crystals as sets of atoms, for attention models: atomic numbers, Cartesian coordinates and
periodic minimum-image distances, stored flat and gathered into padded mini-batches.

Unlike a crystal graph, an atom set keeps every pair of sites of the cell: the distance
matrix of a crystal of ``N`` sites has ``N**2`` entries (its minimum-image distances, Å, from
pymatgen's ``Structure.distance_matrix``), so this format suits cells of up to a few hundred
sites.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["AtomSetBatch", "AtomSets"]


@dataclass
class AtomSetBatch:
    """A padded mini-batch of ``B`` crystals of at most ``N`` sites.

    Attributes
    ----------
    z : LongTensor ``[B, N]``
        Atomic numbers (0 on padding).
    pos : FloatTensor ``[B, N, 3]``
        Cartesian coordinates, Å (0 on padding).
    dist : FloatTensor ``[B, N, N]``
        Minimum-image distances, Å (0 on padding).
    mask : BoolTensor ``[B, N]``
        True on real sites.
    """

    z: Tensor
    pos: Tensor
    dist: Tensor
    mask: Tensor

    @property
    def num_graphs(self) -> int:
        """Number of crystals ``B``."""
        return int(self.z.shape[0])


class AtomSets:
    """Many crystals as flat tensors, from which :class:`AtomSetBatch` batches are gathered.

    Parameters
    ----------
    structures : sequence of pymatgen Structure
        Ordered structures (one element per site).

    Attributes
    ----------
    sizes : LongTensor ``[C]``
        Sites per crystal.
    z : ShortTensor ``[sum(sizes)]``
        Atomic numbers of all sites, crystal after crystal.
    pos : FloatTensor ``[sum(sizes), 3]``
        Cartesian coordinates, Å.
    dist : FloatTensor ``[sum(sizes**2)]``
        Each crystal's minimum-image distance matrix (Å), row-major, crystal after crystal.
    site_offsets, pair_offsets : LongTensor ``[C]``
        Where each crystal starts in ``z``/``pos`` and in ``dist``.

    Raises
    ------
    ValueError
        If a structure is disordered or empty; the message names its position.
    """

    def __init__(self, structures: Sequence[Any]) -> None:
        z, pos, dist, sizes = [], [], [], []
        for i, structure in enumerate(structures):
            if len(structure) == 0:
                raise ValueError(f"the structure at position {i} has no sites")
            if not structure.is_ordered:
                raise ValueError(
                    f"the structure at position {i} ({structure.composition.formula}) is "
                    "disordered; atom sets need one element per site"
                )
            z.append(np.asarray(structure.atomic_numbers, dtype=np.int16))
            pos.append(np.asarray(structure.cart_coords, dtype=np.float32))
            dist.append(np.asarray(structure.distance_matrix, dtype=np.float32).ravel())
            sizes.append(len(structure))
        self.sizes = torch.as_tensor(sizes, dtype=torch.long)
        self.z = torch.from_numpy(np.concatenate(z))
        self.pos = torch.from_numpy(np.concatenate(pos))
        self.dist = torch.from_numpy(np.concatenate(dist))
        self.site_offsets = torch.cumsum(self.sizes, 0) - self.sizes
        self.pair_offsets = torch.cumsum(self.sizes**2, 0) - self.sizes**2
        self.device = torch.device("cpu")

    def __len__(self) -> int:
        return int(self.sizes.numel())

    def to(self, device: torch.device | str) -> AtomSets:
        """Gather batches onto ``device`` (the stored tensors stay on the CPU); returns self."""
        self.device = torch.device(device)
        return self

    def batch(self, index: Any) -> AtomSetBatch:
        """The crystals at positions ``index``, padded to the largest of them.

        Parameters
        ----------
        index : sequence of int or LongTensor
            Positions of the crystals (``0 <= i < len(self)``), in batch order.

        Raises
        ------
        IndexError
            If ``index`` is empty or holds a position outside the set.
        """
        index = torch.as_tensor(index, dtype=torch.long).cpu().reshape(-1)
        if index.numel() == 0:
            raise IndexError("an empty batch: give at least one crystal position")
        if int(index.min()) < 0 or int(index.max()) >= len(self):
            raise IndexError(
                f"crystal positions must lie in [0, {len(self)}), got {index.tolist()}"
            )
        sizes = self.sizes[index]
        b, n = int(index.numel()), int(sizes.max())
        mask = torch.arange(n).unsqueeze(0) < sizes.unsqueeze(1)  # [B, N]
        rows, cols = mask.nonzero(as_tuple=True)
        sites = self.site_offsets[index][rows] + cols
        z = torch.zeros((b, n), dtype=torch.long)
        z[rows, cols] = self.z[sites].long()
        pos = torch.zeros((b, n, 3), dtype=torch.float32)
        pos[rows, cols] = self.pos[sites]
        pair_mask = mask.unsqueeze(2) & mask.unsqueeze(1)  # [B, N, N]
        pb, pi, pj = pair_mask.nonzero(as_tuple=True)
        flat = self.pair_offsets[index][pb] + pi * sizes[pb] + pj
        dist = torch.zeros((b, n, n), dtype=torch.float32)
        dist[pb, pi, pj] = self.dist[flat]
        device = self.device
        return AtomSetBatch(z=z.to(device), pos=pos.to(device), dist=dist.to(device),
                            mask=mask.to(device))  # fmt: skip
