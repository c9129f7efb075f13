"""Crystal structures as ``torch_geometric`` graphs, following the CGCNN convention.

Each site of the unit cell is a node. For every site, the ``max_neighbors`` nearest
neighbours within ``radius`` (Å) become directed edges *into* that site, ordered by distance.
Periodic images are kept as separate edges, so a small cell gives a multigraph in which a site
may be connected to several images of the same site, including its own images.
With ``GraphSettings(symmetric=True)`` (ALIGNN's graph) the neighbours tied with the last one
kept stay too, and the reverse of every bond is added, so that every bond is present in both
directions.

Graph format
------------
:func:`structure_to_graph` returns a :class:`torch_geometric.data.Data` with

``num_nodes``
    Number of sites ``N``.
``z`` : ``Long[N]``
    Atomic number of the majority species on each site.
``species_z`` : ``Long[S]``
    Atomic number of every (site, species) entry. ``S == N`` for an ordered structure.
``species_weight`` : ``Float[S]``
    Occupancy of that species on its site (1.0 for ordered sites).
``species_site_index`` : ``Long[S]``
    Node index of the entry. The name contains ``"index"``, so batching offsets it by the
    number of nodes of the preceding graphs.
``edge_index`` : ``Long[2, E]``
    ``edge_index[0]`` is the neighbour ``j`` (source) and ``edge_index[1]`` the centre ``i``
    (target). Edges of one centre are contiguous and sorted by ascending distance.
``edge_dist`` : ``Float[E]``
    Centre-neighbour distance in Å.
``edge_attr`` : ``Float[E, G]``
    Gaussian expansion ``exp(-(d - mu_k)^2 / width^2)`` with centres
    ``mu = 0, step, ..., radius`` (41 centres for the defaults). Only when ``expand_edges``.
``edge_vec`` : ``Float[E, 3]``
    Cartesian bond vector from the centre to the neighbour's periodic image, Å (its norm is
    ``edge_dist``). Only when ``edge_vectors``; bond angles (ALIGNN's line graph) need it.
``graph_settings`` : :class:`~crysatom_featurizers.graphs.GraphSettings`
    The settings the graph was built with; an estimator refuses a graph built with other
    neighbour settings than its own.

Disordered sites and vacancies
------------------------------
A site with a partial occupancy contributes one ``species_*`` entry per species, weighted by
its occupancy; the node vector of such a site is the occupancy-weighted sum of the species
vectors (see :class:`crysatom_featurizers.nn.ElementEmbeddingLayer`). Vacancies (total
occupancy below 1) are kept as given: the node vector is then shrunk in proportion to the
occupancy. Call :func:`normalize_species_weights` to rescale the weights of each site to sum
to 1 instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from pymatgen.core import IStructure
from torch_geometric.data import Data

from crysatom_featurizers.graphs import line_graph as _line_graph  # noqa: F401 (edge_vec packs)
from crysatom_featurizers.graphs.inputs import check_structure
from crysatom_featurizers.graphs.settings import (
    CGCNN_GRAPH,
    GraphSettings,
    check_settings,
    gaussian_expand,
)

__all__ = [
    "IsolatedSiteError",
    "iter_structures",
    "normalize_species_weights",
    "prime_structure_caches",
    "site_occupancies",
    "structure_to_graph",
    "structures_to_graphs",
]


class IsolatedSiteError(ValueError):
    """A site has no neighbour within the cutoff radius."""


def _species_arrays(structure: IStructure) -> tuple[np.ndarray, ...]:
    """Majority Z per site, then per-(site, species) atomic numbers, weights and site indices."""
    n_sites = len(structure)
    compositions = [site.species for site in structure]
    z = np.empty(n_sites, dtype=np.int64)
    for i, composition in enumerate(compositions):
        if len(composition) != 1:
            break
        ((species, occupancy),) = composition.items()
        if occupancy != 1:
            break
        z[i] = species.Z
    else:  # every site holds a single species with full occupancy
        return z, z, np.ones(n_sites, dtype=np.float32), np.arange(n_sites, dtype=np.int64)
    species_z: list[int] = []
    weights: list[float] = []
    site_index: list[int] = []
    for i, composition in enumerate(compositions):
        items = list(composition.items())
        if not items:
            raise ValueError(f"site {i} has no species")
        # Majority species; a tie goes to the species listed first.
        z[i] = max(items, key=lambda item: item[1])[0].Z
        for species, occupancy in items:
            species_z.append(species.Z)
            weights.append(occupancy)
            site_index.append(i)
    return (
        z,
        np.asarray(species_z, dtype=np.int64),
        np.asarray(weights, dtype=np.float32),
        np.asarray(site_index, dtype=np.int64),
    )


def _make_data(num_nodes: int, attrs: dict[str, Any]) -> Data:
    """``Data(num_nodes=num_nodes, **attrs)``, filling the storage mapping directly.

    Setting attributes one by one through ``Data.__setattr__`` costs about as much as the
    whole neighbour search for a small cell, so the mapping is filled in one step when this
    version of torch_geometric stores attributes the way :func:`_fast_data_supported` checks.
    """
    if _FAST_DATA:
        data = Data()
        mapping = data._store._mapping
        mapping.update(attrs)
        mapping["num_nodes"] = num_nodes
        return data
    return Data(num_nodes=num_nodes, **attrs)


def _fast_data_supported() -> bool:
    try:
        tensor = torch.zeros(2, 3, dtype=torch.long)
        slow = Data(num_nodes=3, edge_index=tensor, z=tensor[0])
        fast = Data()
        fast._store._mapping.update({"edge_index": tensor, "z": tensor[0]})
        fast._store._mapping["num_nodes"] = 3
        return (
            fast.num_nodes == 3
            and fast.edge_index is tensor
            and sorted(fast.keys()) == sorted(slow.keys())
            and fast.to_dict().keys() == slow.to_dict().keys()
        )
    except Exception:  # any internal change: use the public constructor
        return False


_FAST_DATA = _fast_data_supported()


_NUMERICAL_TOL = 1e-8  # Å; pairs closer than this are the site itself
# A first search uses the radius at which an ideal gas of the cell's density would have
# _SEARCH_MARGIN * max_neighbors neighbours; sites with fewer are searched again at full radius.
_SEARCH_MARGIN = 2.0
_TIE_TOLERANCE = 1e-5  # Å: neighbours this close to the last one kept are ties


def _neighbor_list(
    structure: IStructure, radius: float, max_neighbors: int | None = None
) -> tuple[np.ndarray, ...]:
    """(centre, neighbour, image, distance) of pairs within ``radius`` Å, periodic images
    included; ``image`` is the neighbour's lattice translation (``Float[P, 3]``, fractional).

    The same search as ``Structure.get_neighbor_list(radius, numerical_tol=1e-8,
    exclude_self=True)`` (pymatgen's ``find_points_in_spheres``), with two differences:

    * Cartesian coordinates are computed here from the fractional ones. pymatgen caches
      Cartesian coordinates on the sites when they are first requested, which changes the
      pickle (and so the joblib hash) of the caller's structure.
    * With ``max_neighbors``, pairs beyond a site's ``max_neighbors`` nearest may be left
      out: the search first uses a smaller radius, large enough for most sites to have
      ``max_neighbors`` neighbours, and repeats the search at ``radius`` only for the sites
      that do not. The nearest ``max_neighbors`` of every site are always all present.
    """
    try:
        from pymatgen.optimization.neighbors import find_points_in_spheres
    except ImportError:  # pure-Python fallback of pymatgen
        c, n, images, d = structure.copy().get_neighbor_list(
            radius, numerical_tol=_NUMERICAL_TOL, exclude_self=True
        )
        return c, n, np.asarray(images, dtype=np.float64).reshape(-1, 3), d
    lattice = structure.lattice
    matrix = np.ascontiguousarray(lattice.matrix, dtype=np.float64)
    coords = np.ascontiguousarray(structure.frac_coords @ matrix)
    pbc = np.ascontiguousarray(lattice.pbc, dtype=np.int64)

    def search(centre_coords: np.ndarray, r: float) -> tuple[np.ndarray, ...]:
        c, n, images, d = find_points_in_spheres(
            coords, centre_coords, r=float(r), pbc=pbc, lattice=matrix, tol=_NUMERICAL_TOL
        )
        return c, n, images, d

    first_radius = radius
    if max_neighbors is not None and all(pbc):
        # (the volume from the matrix: Lattice.volume would be cached on the caller's object)
        density = len(coords) / abs(np.linalg.det(matrix))  # sites per Å^3
        wanted = _SEARCH_MARGIN * (max_neighbors + 1)  # + 1: the site itself
        first_radius = min(radius, (3.0 * wanted / (4.0 * np.pi * density)) ** (1.0 / 3.0))
    centers, neighbors, images, distances = search(coords, first_radius)
    if first_radius < radius:
        self_pair = (centers == neighbors) & (distances <= _NUMERICAL_TOL)
        counts = np.bincount(centers[~self_pair], minlength=len(coords))
        short = np.flatnonzero(counts < max_neighbors)
        if short.size:
            keep = counts[centers] >= max_neighbors
            c2, n2, i2, d2 = search(np.ascontiguousarray(coords[short]), radius)
            centers = np.concatenate([centers[keep], short[c2]])
            neighbors = np.concatenate([neighbors[keep], n2])
            images = np.concatenate([images[keep], i2])
            distances = np.concatenate([distances[keep], d2])
    keep = (centers != neighbors) | (distances > _NUMERICAL_TOL)
    return centers[keep], neighbors[keep], images[keep], distances[keep]


#: Two sites closer than this (Å) are one atom listed twice, not a bond.
_OVERLAP = 0.1


def _check_no_overlap(
    structure: IStructure, centers: np.ndarray, neighbors: np.ndarray, distances: np.ndarray
) -> None:
    """Raise ``ValueError`` for two sites at (nearly) the same point: a 0 Å bond would enter
    the graph, or the neighbour search would drop the pair as one site."""
    close = np.flatnonzero(distances < _OVERLAP)
    pair = None
    if close.size:
        k = int(close[0])
        pair = (int(centers[k]), int(neighbors[k]), float(distances[k]))
    else:  # exactly coincident sites are not even neighbours of each other
        frac = np.round(np.mod(structure.frac_coords, 1.0), 6) % 1.0
        _, first, counts = np.unique(frac, axis=0, return_index=True, return_counts=True)
        if (counts > 1).any():
            j = int(first[np.flatnonzero(counts > 1)[0]])
            i = next(i for i in range(len(frac)) if i != j and np.array_equal(frac[i], frac[j]))
            pair = (min(i, j), max(i, j), 0.0)
    if pair is not None:
        i, j, d = pair
        raise ValueError(
            f"sites {i} ({structure[i].species_string}) and {j} ({structure[j].species_string}) "
            f"are {d:.3f} Å apart: one atom listed twice, or a broken structure; remove the "
            "duplicate site"
        )


def _nearest_edges(
    structure: IStructure,
    radius: float,
    max_neighbors: int | None,
    allow_isolated: bool,
    ties: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centre, neighbour, image and distance arrays, truncated to the nearest
    ``max_neighbors`` (with ``ties``: and every neighbour as near as the last one kept)."""
    n_sites = len(structure)
    centers, neighbors, images, distances = _neighbor_list(structure, radius, max_neighbors)
    # Group by centre, ascending distance inside each group: one stable sort on a combined
    # key (centre index times a span larger than any distance, plus the distance).
    order = np.argsort(centers * (2.0 * radius + 1.0) + distances, kind="stable")
    centers = centers[order]
    counts = np.bincount(centers, minlength=n_sites)
    if not allow_isolated and (counts == 0).any():
        isolated = np.flatnonzero(counts == 0)
        raise IsolatedSiteError(
            f"site {int(isolated[0])} ({structure[int(isolated[0])].species_string}) has no "
            f"neighbour within radius={radius} Å ({isolated.size} isolated site(s) in total); "
            f"use a larger radius, or allow_isolated=True to keep such sites without edges"
        )
    if max_neighbors is not None and centers.size and counts.max() > max_neighbors:
        starts = np.cumsum(counts) - counts
        rank = np.arange(centers.size) - starts[centers]
        keep = rank < max_neighbors
        if ties:
            last = np.full(n_sites, np.inf)
            full = counts >= max_neighbors
            last[full] = distances[order][starts[full] + max_neighbors - 1]
            keep |= distances[order] <= last[centers] + _TIE_TOLERANCE
        order = order[keep]
        centers = centers[keep]
    return centers, neighbors[order], images[order], distances[order]


def _both_directions(
    centers: np.ndarray, neighbors: np.ndarray, images: np.ndarray, distances: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The bonds and their reverses (each once), grouped by centre by ascending distance."""
    c = np.concatenate([centers, neighbors])
    n = np.concatenate([neighbors, centers])
    img = np.concatenate([images, -images])
    d = np.concatenate([distances, distances])
    key = np.column_stack([c, n, np.rint(img).astype(np.int64)])
    _, first = np.unique(key, axis=0, return_index=True)
    first = first[np.lexsort((d[first], c[first]))]
    return c[first], n[first], img[first], d[first]


def structure_to_graph(
    structure: IStructure,
    settings: GraphSettings = CGCNN_GRAPH,
    *,
    expand_edges: bool = True,
    allow_isolated: bool = False,
    edge_vectors: bool = False,
    **changes: Any,
) -> Data:
    """Build the crystal graph of one structure (CGCNN's, or ALIGNN's with ``symmetric`` settings
    and ``edge_vectors``).

    Parameters
    ----------
    structure : pymatgen.core.Structure
        Ordered or disordered periodic structure.
    settings : GraphSettings, default=CGCNN_GRAPH
        Neighbour cutoff ``radius`` (Å; also the last Gaussian centre), ``max_neighbors``
        (nearest neighbours kept per site, all within ``radius`` if None; sites with fewer
        keep the ones they have) and the Gaussian distance expansion.
    **changes
        ``radius``, ``max_neighbors``, ``gaussian_step`` or ``gaussian_width`` replacing the
        field of ``settings`` (a shorthand for ``settings.replace(...)``).
    expand_edges : bool
        Store the Gaussian expansion as ``edge_attr``. Without it only ``edge_dist`` is
        stored and the model expands the distances itself, which saves memory.
    allow_isolated : bool
        If False (default), a site without any neighbour within ``radius`` raises
        :class:`IsolatedSiteError`. If True, such a site is kept as a node without incoming
        edges; its features are then only updated through the residual path of the
        convolutions.
    edge_vectors : bool
        Also store each edge's Cartesian bond vector as ``edge_vec`` (``Float[E, 3]``, Å),
        from the centre to the neighbour's image; models of bond angles (ALIGNN) need it.

    Returns
    -------
    torch_geometric.data.Data
        See the module documentation for the attributes.

    Raises
    ------
    TypeError
        If ``structure`` is not a pymatgen Structure.
    IsolatedSiteError
        (a ValueError) if a site has no neighbour within ``radius`` and not ``allow_isolated``.

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> s = Structure(Lattice.cubic(2.87), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    >>> g = structure_to_graph(s)
    >>> g.num_nodes, g.edge_index.shape, g.edge_attr.shape
    (2, torch.Size([2, 24]), torch.Size([24, 41]))
    """
    check_structure(structure)
    settings = check_settings(settings, **changes)
    radius, max_neighbors = settings.radius, settings.max_neighbors
    n_sites = len(structure)
    if n_sites == 0:
        raise ValueError("structure has no sites")
    z, species_z, species_weight, species_site_index = _species_arrays(structure)
    centers, neighbors, images, distances = _nearest_edges(
        structure, radius, max_neighbors, allow_isolated, ties=settings.symmetric
    )
    _check_no_overlap(structure, centers, neighbors, distances)
    if settings.symmetric:
        centers, neighbors, images, distances = _both_directions(
            centers, neighbors, images, distances
        )
    edge_index = np.empty((2, centers.size), dtype=np.int64)
    edge_index[0] = neighbors
    edge_index[1] = centers
    dist32 = distances.astype(np.float32)
    attrs = {
        "z": torch.from_numpy(z),
        "species_z": torch.from_numpy(species_z),
        "species_weight": torch.from_numpy(species_weight),
        "species_site_index": torch.from_numpy(species_site_index),
        "edge_index": torch.from_numpy(edge_index),
        "edge_dist": torch.from_numpy(dist32),
        "graph_settings": settings,
    }
    if edge_vectors:
        matrix = np.asarray(structure.lattice.matrix, dtype=np.float64)
        coords = structure.frac_coords @ matrix  # not cart_coords: that caches on the sites
        vectors = coords[neighbors] + images @ matrix - coords[centers]
        attrs["edge_vec"] = torch.from_numpy(vectors.astype(np.float32))
    if expand_edges:
        attrs["edge_attr"] = torch.from_numpy(
            gaussian_expand(dist32, settings.centers(), settings.gaussian_width)
        )
    return _make_data(n_sites, attrs)


def iter_structures(
    structures: Any, name: str = "input", also: str = ""
) -> tuple[list[Any], list[Any]]:
    """Items of a list, Series or DataFrame (``structure`` column) with their row labels.

    Parameters
    ----------
    structures : sequence, pandas.Series or pandas.DataFrame
        The input; items are not checked here.
    name : str
        How the caller calls the argument, for error messages.
    also : str
        Other accepted item types, appended to the error message (e.g. ``" or graphs"``).

    Returns
    -------
    items, labels : list
        The items, and the index labels of a pandas input or the positions otherwise.

    Raises
    ------
    TypeError
        For a single Structure, a string, a mapping or a non-iterable.
    ValueError
        For a DataFrame without a ``structure`` column.
    """
    if isinstance(structures, pd.DataFrame):
        if "structure" not in structures.columns:
            raise ValueError(
                f"a DataFrame {name} needs a 'structure' column of pymatgen Structures; got "
                f"columns {list(structures.columns)[:10]}"
            )
        structures = structures["structure"]
    if isinstance(structures, pd.Series):
        return list(structures.to_numpy()), list(structures.index)
    if isinstance(structures, IStructure):
        raise TypeError(
            f"{name} must be a sequence of structures, got a single Structure; wrap it in a list"
        )
    if isinstance(structures, (str, bytes, Mapping)) or not isinstance(structures, Iterable):
        raise TypeError(
            f"{name} must be a sequence of pymatgen Structures (list, pandas Series, DataFrame "
            f"with a 'structure' column){also}; got "
            f"{type(structures).__module__}.{type(structures).__qualname__}"
        )
    items = list(structures)
    return items, list(range(len(items)))


def _graphs_of_chunk(items: Sequence[Any], labels: Sequence[Any], kwargs: dict) -> list[Data]:
    graphs = []
    for item, label in zip(items, labels):
        check_structure(item, label)
        try:
            graphs.append(structure_to_graph(item, **kwargs))
        except IsolatedSiteError as exc:
            raise IsolatedSiteError(f"row {label!r}: {exc}") from exc
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"row {label!r}: {exc}") from exc
    return graphs


def structures_to_graphs(
    structures: Sequence[IStructure] | pd.Series | pd.DataFrame,
    settings: GraphSettings = CGCNN_GRAPH,
    *,
    expand_edges: bool = True,
    allow_isolated: bool = False,
    edge_vectors: bool = False,
    n_jobs: int | None = 1,
    progress: bool = False,
    site_features: str | None = None,
    **changes: Any,
) -> list[Data]:
    """Build the crystal graphs of many structures.

    Parameters
    ----------
    structures : sequence of Structure, pandas.Series or pandas.DataFrame
        A DataFrame must have a ``structure`` column.
    settings, expand_edges, allow_isolated, edge_vectors, **changes
        As in :func:`structure_to_graph`.
    n_jobs : int or None
        Number of joblib workers (1: in the calling process, the fastest choice for a few
        thousand structures; -1: all cores).
    progress : bool
        Show a tqdm progress bar.
    site_features : str, optional
        A universal potential (``"chgnet"``, ``"sevennet"``) whose per-site vectors each graph
        carries as ``site_features`` (see
        :func:`~crysatom_featurizers.graphs.attach_site_features`; needs the ``[potentials]``
        extra).

    Returns
    -------
    list of torch_geometric.data.Data
        One graph per input, in input order.

    Raises
    ------
    TypeError
        If an item is not a Structure; the message names its row (position for a list,
        index label for a Series or DataFrame) and its type.
    ValueError
        For an isolated site or another invalid structure; the message names the row.
    """
    items, labels = iter_structures(structures)
    kwargs = {
        "settings": check_settings(settings, **changes),
        "expand_edges": expand_edges,
        "allow_isolated": allow_isolated,
        "edge_vectors": edge_vectors,
    }
    graphs = _build_graphs(items, labels, kwargs, n_jobs, progress)
    if site_features is not None:
        from crysatom_featurizers.graphs.site_features import attach_site_features

        attach_site_features(
            graphs, items, labels, site_features, progress=progress, allow_isolated=allow_isolated
        )
    return graphs


def _build_graphs(
    items: list[Any], labels: list[Any], kwargs: dict, n_jobs: int | None, progress: bool
) -> list[Data]:
    n_workers = 1 if n_jobs is None else int(n_jobs)
    if n_workers == 1 or len(items) < 2:
        if not progress:
            return _graphs_of_chunk(items, labels, kwargs)
        from tqdm.auto import tqdm

        graphs = []
        for item, label in tqdm(zip(items, labels), total=len(items), desc="graphs"):
            graphs.extend(_graphs_of_chunk([item], [label], kwargs))
        return graphs

    from joblib import Parallel, cpu_count, delayed

    workers = cpu_count() if n_workers < 0 else n_workers
    chunk = max(1, min(256, -(-len(items) // (4 * max(1, workers)))))
    bounds = range(0, len(items), chunk)
    tasks = (
        delayed(_graphs_of_chunk)(items[i : i + chunk], labels[i : i + chunk], kwargs)
        for i in bounds
    )
    results = Parallel(n_jobs=n_jobs, return_as="generator")(tasks)
    if progress:
        from tqdm.auto import tqdm

        results = tqdm(results, total=len(bounds), desc=f"graphs ({chunk}/chunk)")
    graphs = []
    for part in results:
        graphs.extend(part)
    return graphs


def prime_structure_caches(structures: Any) -> Any:
    """Fill pymatgen's lazily cached attributes so the joblib hash of the structures is stable.

    pymatgen computes some attributes on first use and stores them on the objects (Cartesian
    site coordinates, lattice lengths, angles and volume). Printing a structure fills them,
    and ``joblib.Memory`` prints (``repr``) the arguments of every call it stores. The first
    cached call therefore changes the hash of its own input, and the next call with the same
    structures misses the cache. Calling this function once beforehand fills those caches,
    so that ``Pipeline(memory=...)`` or ``joblib.Memory`` hit from the second call on.

    Parameters
    ----------
    structures : sequence of Structure, pandas.Series or pandas.DataFrame
        Modified in place (only caches; no data changes).

    Returns
    -------
    The input, for chaining.
    """
    items, labels = iter_structures(structures)
    for item, label in zip(items, labels):
        check_structure(item, label)
        item.cart_coords  # noqa: B018 - fills the per-site Cartesian coordinate cache
        repr(item)
        str(item)
    return structures


def site_occupancies(graph: Data) -> torch.Tensor:
    """Total occupancy of each site (``Float[N]``); values below 1 mark vacancies."""
    out = torch.zeros(graph.num_nodes, dtype=graph.species_weight.dtype)
    return out.index_add_(0, graph.species_site_index, graph.species_weight)


def normalize_species_weights(graph: Data) -> Data:
    """Return a copy of ``graph`` whose species weights sum to 1 on every site.

    By default, a site with vacancies (total occupancy below 1) keeps its occupancies as
    weights, so its node vector is shrunk towards zero. This rescales the weights so that such
    a site is represented by the composition-weighted mean of its species instead.
    """
    out = graph.clone()
    totals = site_occupancies(graph)
    out.species_weight = graph.species_weight / totals[graph.species_site_index]
    return out
