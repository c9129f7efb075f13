"""Building blocks of the CGCNN model: distance expansion, element lookup, gated convolution."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from crysatom_featurizers.chemistry import element_symbol
from crysatom_featurizers.graphs import CGCNN_GRAPH, GraphSettings, gaussian_centers

__all__ = [
    "CGCNNConv",
    "ElementEmbeddingLayer",
    "GaussianExpansion",
    "check_covered",
    "edge_features",
    "uniform_neighbors",
]


def _uncovered(atomic_numbers: Tensor, covered: Tensor) -> Tensor:
    """``Bool`` mask of the atomic numbers outside the ``covered`` table."""
    z_in = atomic_numbers.clamp(0, covered.numel() - 1)
    return (atomic_numbers != z_in) | ~covered[z_in]


def check_covered(
    species_z: Tensor,
    covered: Tensor,
    embedding_name: str,
    where: Callable[[int], str] | None = None,
) -> None:
    """Raise if an element of ``species_z`` has no vector in the embedding.

    Parameters
    ----------
    species_z : LongTensor
        Atomic numbers (e.g. the ``species_z`` of a graph, batch or packed set).
    covered : BoolTensor
        ``covered[z]`` is True when the embedding has a vector for atomic number ``z``.
    embedding_name : str
        Name of the embedding, for the message.
    where : callable, optional
        ``where(i)`` describes the crystal of entry ``i`` of ``species_z`` for the message
        (e.g. ``"the structure at row 3"``); default ``"the graph"``.

    Raises
    ------
    ValueError
        Naming the first uncovered element, its crystal and every uncovered element present.
    """
    z = species_z.reshape(-1)
    bad = _uncovered(z, covered)
    if not bool(bad.any()):
        return
    first = int(torch.nonzero(bad)[0, 0])
    symbol = element_symbol(int(z[first]), strict=False)
    missing = ", ".join(element_symbol(v, strict=False) for v in torch.unique(z[bad]).tolist())
    place = "the graph" if where is None else where(first)
    raise ValueError(
        f"{place} contains {symbol}, which the {embedding_name!r} embedding does not cover "
        f"(uncovered elements present: {missing}); choose an embedding that covers them or "
        "drop these structures"
    )


class GaussianExpansion(nn.Module):
    """Expand distances in Gaussians: ``exp(-(d - mu_k)^2 / width^2)``.

    The centres are ``start, start + step, ..., stop`` (Å), identical to the ones used by
    :func:`crysatom_featurizers.graphs.structure_to_graph`; the defaults are those of
    :data:`crysatom_featurizers.graphs.CGCNN_GRAPH` (41 centres).

    Parameters
    ----------
    start, stop, step : float
        Centre grid, Å.
    width : float
        Gaussian width, Å.

    Notes
    -----
    **Tensor shapes.**

    ``Float[E]`` (or any shape ``S``) -> ``Float[E, G]`` (``S + (G,)``).

    """

    def __init__(
        self,
        start: float = 0.0,
        stop: float = CGCNN_GRAPH.radius,
        step: float = CGCNN_GRAPH.gaussian_step,
        width: float = CGCNN_GRAPH.gaussian_width,
    ) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"gaussian width must be positive, got {width}")
        centers = torch.as_tensor(gaussian_centers(start, stop, step), dtype=torch.float32)
        self.register_buffer("centers", centers, persistent=False)
        self.width = float(width)

    @classmethod
    def from_settings(cls, settings: GraphSettings) -> GaussianExpansion:
        """The expansion of a graph's edges: centres ``0, step, ..., radius``."""
        return cls(0.0, settings.radius, settings.gaussian_step, settings.gaussian_width)

    @property
    def num_gaussians(self) -> int:
        """Number of centres ``G``."""
        return int(self.centers.numel())

    def forward(self, distances: Tensor) -> Tensor:
        diff = distances.unsqueeze(-1).to(self.centers.dtype) - self.centers
        return torch.exp(-(diff * diff) / (self.width * self.width))

    def extra_repr(self) -> str:
        c = self.centers
        return f"start={float(c[0]):g}, stop={float(c[-1]):g}, n={c.numel()}, width={self.width:g}"


def edge_features(batch: Any, expansion: GaussianExpansion) -> Tensor:
    """The batch's precomputed ``edge_attr``, or ``expansion`` of its ``edge_dist``.

    Raises
    ------
    ValueError
        If the batch has neither.
    """
    edge_attr = getattr(batch, "edge_attr", None)
    if edge_attr is not None:
        return edge_attr
    edge_dist = getattr(batch, "edge_dist", None)
    if edge_dist is None:
        raise ValueError("the graphs have neither edge_attr nor edge_dist")
    return expansion(edge_dist)


class ElementEmbeddingLayer(nn.Module):
    """Node input vectors looked up from an element embedding, occupancy-weighted.

    For every ``(site, species)`` entry of the graph the vector of the species' element is
    multiplied by its occupancy and summed onto its site, so an ordered site gets the element
    vector and a disordered site the occupancy-weighted sum of its species' vectors.

    Parameters
    ----------
    embedding : ElementEmbedding or str
        An embedding object (anything with ``lookup_table()`` and ``name``), or a registry
        name (or anything else) resolved with :func:`crysatom_featurizers.embeddings.resolve`.
    dim : int, optional
        Vector dimension passed to ``resolve`` when ``embedding`` is a name.
    trainable : bool
        If False (default), the table is a frozen buffer, as in the CrysAtom paper; if True,
        it is an ``nn.Parameter`` and is fine-tuned. Rows of uncovered elements stay zero
        and are never used: such elements raise in ``forward``.
    max_z : int
        Largest atomic number of the table.
    site_dim : int
        Width of per-site vectors that the graphs carry as ``site_features`` (a universal
        potential's, see :func:`~crysatom_featurizers.graphs.attach_site_features`); 0: none.
        They follow the element vectors in each node's input.
    use_elements : bool
        Put the element vectors in the node inputs (default). False, with ``site_dim``: the
        site vectors alone, in place of the element vectors; the table then only says which
        elements the network accepts.

    Attributes
    ----------
    weight : torch.Tensor
        ``Float[max_z + 1, dim]`` table indexed by atomic number (zeros where uncovered).
    covered : torch.Tensor
        ``Bool[max_z + 1]`` mask of covered atomic numbers.
    """

    def __init__(
        self,
        embedding: Any,
        dim: int | None = None,
        trainable: bool = False,
        max_z: int = 118,
        site_dim: int = 0,
        use_elements: bool = True,
    ) -> None:
        super().__init__()
        if site_dim < 0 or (not use_elements and site_dim == 0):
            raise ValueError(
                f"the node inputs need element vectors or site vectors (site_dim={site_dim}, "
                f"use_elements={use_elements})"
            )
        self.site_dim = int(site_dim)
        self.use_elements = bool(use_elements)
        if not hasattr(embedding, "lookup_table"):
            from crysatom_featurizers.embeddings import resolve

            embedding = resolve(embedding, dim)
        table, covered = embedding.lookup_table(max_z=max_z)
        table = torch.from_numpy(np.array(table, dtype=np.float32, copy=True))
        covered = torch.from_numpy(np.array(covered, dtype=bool, copy=True))
        table[~covered] = 0.0
        self.embedding_name = str(getattr(embedding, "name", "custom"))
        self.trainable = bool(trainable)
        if self.trainable:
            self.weight = nn.Parameter(table)
        else:
            self.register_buffer("weight", table)
        self.register_buffer("covered", covered)

    @property
    def dim(self) -> int:
        """Dimension of the element vectors of the table."""
        return int(self.weight.shape[1])

    @property
    def out_dim(self) -> int:
        """Width of the node inputs: the element vectors (if used) and the site vectors."""
        return (self.dim if self.use_elements else 0) + self.site_dim

    def input_config(self) -> dict[str, Any]:
        """``site_dim`` and ``use_elements`` for a network's ``config`` (empty without site
        vectors, so that the configs of element-only networks are as before)."""
        if not self.site_dim:
            return {}
        return {"site_dim": self.site_dim, "use_elements": self.use_elements}

    def missing_elements(self, atomic_numbers: Tensor) -> list[str]:
        """Symbols of the atomic numbers in ``atomic_numbers`` that the table does not cover."""
        z = atomic_numbers.reshape(-1)
        bad = _uncovered(z, self.covered)
        return [element_symbol(v, strict=False) for v in torch.unique(z[bad]).tolist()]

    def check(self, species_z: Tensor, site_index: Tensor, data: Any = None) -> None:
        """:func:`check_covered` on the entries of a graph or batch (``data``, for the message)."""
        batch = getattr(data, "batch", None)
        where = None
        if batch is not None:

            def where(entry: int) -> str:
                return f"graph {int(batch[site_index[entry]])} of the batch"

        check_covered(species_z, self.covered, self.embedding_name, where)

    def forward(self, data: Any) -> Tensor:
        """Return ``Float[N, dim]`` node vectors for a ``GraphBatch``, ``Data`` or ``Batch``.

        Uses ``species_z``, ``species_weight`` and ``species_site_index`` when present, else
        ``z`` (one species per site with weight 1).
        """
        species_z = getattr(data, "species_z", None)
        if species_z is None:
            species_z = data.z
            site_index = torch.arange(species_z.numel(), device=species_z.device)
            weight = None
        else:
            site_index = data.species_site_index
            weight = data.species_weight
        self.check(species_z, site_index, data)
        if not self.site_dim:
            return self._element_vectors(data, species_z, site_index, weight)
        sites = getattr(data, "site_features", None)
        if sites is None or sites.shape[-1] != self.site_dim:
            width = None if sites is None else sites.shape[-1]
            raise ValueError(
                f"the network reads {self.site_dim} site vectors per node (site_features), the "
                f"graphs carry {width}"
            )
        if not self.use_elements:
            return sites.to(self.weight.dtype)
        elements = self._element_vectors(data, species_z, site_index, weight)
        return torch.cat([elements, sites.to(elements.dtype)], dim=-1)

    def _element_vectors(
        self, data: Any, species_z: Tensor, site_index: Tensor, weight: Tensor | None
    ) -> Tensor:
        vectors = self.weight[species_z]
        if weight is None:
            return vectors
        vectors = vectors * weight.to(vectors.dtype).unsqueeze(-1)
        out = vectors.new_zeros((int(data.num_nodes), vectors.shape[1]))
        return out.index_add_(0, site_index, vectors)

    def extra_repr(self) -> str:
        text = f"{self.embedding_name!r}, dim={self.dim}, trainable={self.trainable}"
        if self.site_dim:
            text += f", site_dim={self.site_dim}, use_elements={self.use_elements}"
        return text


class CGCNNConv(MessagePassing):
    """Gated graph convolution of CGCNN (Xie & Grossman, PRL 120, 145301, 2018).

    For a centre ``i`` with neighbours ``j`` (edges ``j -> i``)::

        z_ij = [x_i, x_j, e_ij] W + b                 (one Linear to 2 * node_dim)
        z_ij = BatchNorm(z_ij)                          (over edges)
        f_ij, c_ij = split(z_ij)
        m_i = sum_j sigmoid(f_ij) * softplus(c_ij)
        x_i' = softplus(x_i + BatchNorm(m_i))

    With ``batch_norm=False`` and ``outer_softplus=False`` this is PyG's
    ``CGConv(batch_norm=False)``; the defaults follow the original CGCNN.

    Parameters
    ----------
    node_dim : int
        Node feature size (input and output).
    edge_dim : int
        Edge feature size (41 Gaussians by default).
    batch_norm : bool
        Apply the two batch norms of the original.
    outer_softplus : bool
        Apply the softplus after the residual sum.
    """

    def __init__(
        self, node_dim: int, edge_dim: int, batch_norm: bool = True, outer_softplus: bool = True
    ) -> None:
        super().__init__(aggr="add")
        self.channels = int(node_dim)
        self.edge_dim = int(edge_dim)
        self.lin = nn.Linear(2 * node_dim + edge_dim, 2 * node_dim)
        self.bn_message = nn.BatchNorm1d(2 * node_dim) if batch_norm else nn.Identity()
        self.bn_sum = nn.BatchNorm1d(node_dim) if batch_norm else nn.Identity()
        self.outer_softplus = bool(outer_softplus)

    def propagate(self, edge_index: Any, size: Any = None, **kwargs: Any) -> Any:
        """PyG's ``propagate``, unchanged. Defining it here keeps PyG from generating a
        compiled copy as a Python file in the temporary folder (it would stay there after every
        run); :meth:`forward` gathers and sums by itself and does not call it."""
        return MessagePassing.propagate(self, edge_index, size=size, **kwargs)

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor,
        neighbors_per_node: int | None = None,
    ) -> Tensor:
        """Update node features.

        Parameters
        ----------
        x : Tensor, shape (N, node_dim)
        edge_index : LongTensor, shape (2, E)
            ``edge_index[0]`` the neighbour ``j``, ``edge_index[1]`` the centre ``i``.
        edge_attr : Tensor, shape (E, edge_dim)
        neighbors_per_node : int, optional
            Set it only when the edges are grouped by centre in node order with exactly this
            many per node (``edge_index[1] == arange(N).repeat_interleave(k)``; see
            :func:`uniform_neighbors`). Centre gathers and the neighbour sum then become
            reshapes: same result, about a quarter less time on CPU.
        """
        # The Linear on [x_i, x_j, e_ij] of the class docstring, split by input blocks: the
        # node blocks are multiplied once per node instead of once per edge (about 12x fewer
        # rows) before the gather. Same result as concatenating per edge.
        d = self.channels
        n = x.shape[0]
        weight = self.lin.weight
        source, target = edge_index[0], edge_index[1]
        z = F.linear(edge_attr, weight[:, 2 * d :], self.lin.bias)
        centre = F.linear(x, weight[:, :d])
        if neighbors_per_node is None:
            z = z + centre.index_select(0, target)
        else:
            z = (z.view(n, neighbors_per_node, 2 * d) + centre.unsqueeze(1)).view(-1, 2 * d)
        z = z + F.linear(x, weight[:, d : 2 * d]).index_select(0, source)
        z = self.bn_message(z)
        gate, core = z.chunk(2, dim=-1)
        messages = torch.sigmoid(gate) * F.softplus(core)
        if neighbors_per_node is None:
            summed = messages.new_zeros((n, messages.shape[1])).index_add_(0, target, messages)
        else:
            summed = messages.view(n, neighbors_per_node, d).sum(1)
        out = x + self.bn_sum(summed)
        return F.softplus(out) if self.outer_softplus else out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.channels}, edge_dim={self.edge_dim}, "
            f"batch_norm={not isinstance(self.bn_sum, nn.Identity)}, "
            f"outer_softplus={self.outer_softplus})"
        )


def uniform_neighbors(edge_index: Tensor, num_nodes: int) -> int | None:
    """``k`` if the edges are grouped by centre in node order with exactly ``k`` per node.

    That is the layout :func:`crysatom_featurizers.graphs.structure_to_graph` writes (up to
    ``max_neighbors`` edges per centre, centre by centre) whenever every site has the full
    number of neighbours within the radius, also after batching. ``None`` otherwise (for example
    after edge masking, or with an isolated site).

    Parameters
    ----------
    edge_index : LongTensor, shape (2, E)
    num_nodes : int
    """
    n_edges = edge_index.shape[1]
    if num_nodes == 0 or n_edges == 0 or n_edges % num_nodes:
        return None
    k = n_edges // num_nodes
    centres = torch.arange(num_nodes, device=edge_index.device).unsqueeze(1)
    return k if bool((edge_index[1].view(num_nodes, k) == centres).all()) else None
