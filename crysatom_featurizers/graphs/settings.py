"""Settings of the crystal graphs (CGCNN's, ALIGNN's) and their Gaussian distance expansion
(no torch import)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from crysatom_featurizers._checks import check_real

__all__ = [
    "ALIGNN_GRAPH",
    "CGCNN_GRAPH",
    "GraphSettings",
    "alignn_graph",
    "check_settings",
    "gaussian_centers",
    "gaussian_expand",
]


@dataclass(frozen=True)
class GraphSettings:
    """Neighbour search and edge features of a crystal graph (CGCNN's directed graph, or
    ALIGNN's undirected one with ``symmetric=True``).

    Parameters
    ----------
    radius : float, default=8.0
        Neighbour cutoff, Å. Also the last centre of the Gaussian distance expansion.
    max_neighbors : int or None, default=12
        Nearest neighbours kept per site (None: all within ``radius``).
    gaussian_step : float, default=0.2
        Spacing of the Gaussian centres ``0, step, ..., radius``, Å.
    gaussian_width : float, default=0.2
        Width of each Gaussian, Å.
    symmetric : bool, default=False
        False: CGCNN's directed graph, each site's nearest ``max_neighbors`` as its incoming
        edges (ties at the last distance cut arbitrarily). True: ALIGNN's undirected graph,
        every neighbour at up to the ``max_neighbors``-th distance (ties included) and the
        reverse of every bond, so that each bond is present in both directions and bond
        angles do not depend on the site order or the choice of cell.

    The defaults are those of CGCNN (Xie & Grossman, PRL 120, 145301, 2018), also used by
    CrysAtom pretraining (paper Table 2: r = 8 Å); :data:`CGCNN_GRAPH` holds them. The graph
    builders, the models and the estimators take one ``GraphSettings``; ``radius`` is the
    cutoff's one name throughout.
    """

    radius: float = 8.0
    max_neighbors: int | None = 12
    gaussian_step: float = 0.2
    gaussian_width: float = 0.2
    symmetric: bool = False

    def __post_init__(self) -> None:
        check_real("radius", self.radius, positive=True, unit="Å")
        if self.max_neighbors is not None and self.max_neighbors < 1:
            raise ValueError(f"max_neighbors must be at least 1 or None, got {self.max_neighbors}")
        if not self.gaussian_step > 0:
            raise ValueError(f"gaussian step must be positive, got {self.gaussian_step}")
        if not self.gaussian_width > 0:
            raise ValueError(f"gaussian width must be positive, got {self.gaussian_width}")

    def centers(self) -> np.ndarray:
        """Gaussian centres ``0, step, ..., radius`` (Å), see :func:`gaussian_centers`."""
        return gaussian_centers(0.0, self.radius, self.gaussian_step)

    @property
    def num_gaussians(self) -> int:
        """Number of edge features ``G`` (41 for the defaults)."""
        return len(self.centers())

    def replace(self, **changes: Any) -> GraphSettings:
        """A copy with the given fields changed (validated again).

        Raises
        ------
        TypeError
            For a name that is not a field.
        """
        names = [f.name for f in fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise TypeError(f"unknown graph setting(s) {unknown}; the settings are {names}")
        return replace(self, **changes) if changes else self

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (e.g. for a model file's metadata)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GraphSettings:
        """Settings from :meth:`as_dict` output; missing fields keep the CGCNN defaults and
        other keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


#: The CGCNN graph: 8 Å cutoff, 12 neighbours, Gaussians every 0.2 Å of width 0.2 Å.
CGCNN_GRAPH = GraphSettings()


_ALIGNN_BOND_BINS = 80


def alignn_graph(radius: float = 8.0, max_neighbors: int = 12) -> GraphSettings:
    """ALIGNN's crystal graph: undirected (``symmetric``), the ``max_neighbors`` nearest sites
    within ``radius`` Å with ties, bond lengths expanded in 80 Gaussians from 0 to ``radius``
    whose squared width is their spacing (ALIGNN's radial basis)."""
    step = float(radius) / (_ALIGNN_BOND_BINS - 1)
    return GraphSettings(
        radius=float(radius),
        max_neighbors=int(max_neighbors),
        gaussian_step=step,
        gaussian_width=float(np.sqrt(step)),
        symmetric=True,
    )


#: The graph of the ALIGNN paper (Choudhary & DeCost 2021): 8 Å, 12 neighbours, 80 Gaussians.
ALIGNN_GRAPH = alignn_graph()


def check_settings(settings: Any, **changes: Any) -> GraphSettings:
    """``settings`` (a :class:`GraphSettings`) with ``changes`` applied.

    Raises
    ------
    TypeError
        If ``settings`` is not a ``GraphSettings`` or a change names no field.
    """
    if not isinstance(settings, GraphSettings):
        raise TypeError(
            f"settings must be a GraphSettings, got {type(settings).__name__}; pass radius=... "
            "and max_neighbors=... as keywords or GraphSettings(radius=...)"
        )
    return settings.replace(**changes)


def gaussian_centers(
    start: float = 0.0,
    stop: float = CGCNN_GRAPH.radius,
    step: float = CGCNN_GRAPH.gaussian_step,
) -> np.ndarray:
    """Centres ``start, start + step, ..., stop`` (Å) of the Gaussian distance expansion.

    The number of centres is ``round((stop - start) / step) + 1`` (41 for the defaults), so the
    end point is included even when ``(stop - start) / step`` is not exactly an integer.

    Parameters
    ----------
    start, stop : float
        First and last centre, Å.
    step : float
        Spacing between centres, Å. Must be positive.

    Returns
    -------
    numpy.ndarray
        float64 array of shape ``(G,)``.
    """
    if step <= 0:
        raise ValueError(f"gaussian step must be positive, got {step}")
    if stop < start:
        raise ValueError(f"gaussian stop ({stop}) must not be below start ({start})")
    n = int(round((stop - start) / step)) + 1
    return start + step * np.arange(n, dtype=np.float64)


def gaussian_expand(
    distances: np.ndarray,
    centers: np.ndarray,
    width: float = CGCNN_GRAPH.gaussian_width,
    dtype: Any = np.float32,
) -> np.ndarray:
    """Expand distances in Gaussians: ``exp(-(d - mu_k)^2 / width^2)``.

    Parameters
    ----------
    distances : numpy.ndarray
        Distances, Å, shape ``(E,)``.
    centers : numpy.ndarray
        Gaussian centres, Å, shape ``(G,)`` (see :func:`gaussian_centers`).
    width : float
        Gaussian width, Å.
    dtype : numpy dtype
        Output dtype (float32 by default).

    Returns
    -------
    numpy.ndarray
        Shape ``(E, G)``.
    """
    if width <= 0:
        raise ValueError(f"gaussian width must be positive, got {width}")
    d = np.asarray(distances, dtype=dtype)[:, None]
    diff = d - np.asarray(centers, dtype=dtype)[None, :]
    diff *= diff
    diff *= -1.0 / (width * width)
    return np.exp(diff, out=diff)
