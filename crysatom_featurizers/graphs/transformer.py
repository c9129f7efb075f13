"""Scikit-learn transformer from pymatgen Structures to CGCNN crystal graphs."""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator, TransformerMixin
from torch_geometric.data import Data

from crysatom_featurizers.graphs.build import structures_to_graphs
from crysatom_featurizers.graphs.settings import CGCNN_GRAPH, GraphSettings

__all__ = ["CrystalGraphTransformer"]


class CrystalGraphTransformer(TransformerMixin, BaseEstimator):
    """Scikit-learn transformer from pymatgen Structures to CGCNN crystal graphs.

    It is stateless and deterministic, so inside ``Pipeline(memory=...)`` a repeated fit on
    the same structures is served from the joblib cache. pymatgen fills some caches on the
    structures the first time they are printed, which joblib does when it stores a call;
    call :func:`~crysatom_featurizers.graphs.prime_structure_caches` on the structures once
    beforehand so that the second fit already hits the cache (otherwise the third does).

    Parameters
    ----------
    radius : float
        Neighbour cutoff, Å.
    max_neighbors : int or None
        Maximum number of neighbours per site.
    gaussian_step, gaussian_width : float
        Spacing and width (Å) of the Gaussian distance expansion.
    expand_edges : bool
        Store the Gaussian expansion as ``edge_attr`` (otherwise only ``edge_dist``).
    allow_isolated : bool
        Keep sites without neighbours instead of raising.
    edge_vectors : bool
        Also store the bond vectors (``edge_vec``, Å), which ALIGNN needs for bond angles.
    symmetric : bool
        ALIGNN's undirected graph: neighbours tied with the ``max_neighbors``-th kept, and
        every bond in both directions (see :class:`GraphSettings`).
    site_features : str, optional
        A universal potential (``"chgnet"``, ``"sevennet"``) whose frozen per-site vectors each
        graph carries as ``site_features``, for estimators that read them (needs the
        ``[potentials]`` extra).
    n_jobs : int or None
        Number of joblib workers.
    verbose : bool
        Show a progress bar.

    Attributes
    ----------
    n_edge_features_ : int
        Number of edge features (Gaussian centres) of the produced graphs, set by ``fit``.

    Notes
    -----
    ``transform`` returns a list of graphs, not a feature matrix: there are no output columns
    to name, so the transformer has no ``get_feature_names_out`` and no ``set_output`` (as
    for other scikit-learn transformers with non-tabular output). Use it as the step before
    :class:`~crysatom_featurizers.estimators.CGCNNRegressor` or
    :class:`~crysatom_featurizers.estimators.CGCNNClassifier`, or batch its output with
    :meth:`GraphBatch.from_graphs <crysatom_featurizers.graphs.GraphBatch.from_graphs>`.

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> s = Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    >>> graphs = CrystalGraphTransformer().fit_transform([s])
    >>> graphs[0].edge_attr.shape[1]
    41
    """

    def __init__(
        self,
        radius: float = CGCNN_GRAPH.radius,
        max_neighbors: int | None = CGCNN_GRAPH.max_neighbors,
        gaussian_step: float = CGCNN_GRAPH.gaussian_step,
        gaussian_width: float = CGCNN_GRAPH.gaussian_width,
        expand_edges: bool = True,
        allow_isolated: bool = False,
        n_jobs: int | None = 1,
        verbose: bool = False,
        edge_vectors: bool = False,
        symmetric: bool = False,
        site_features: str | None = None,
    ) -> None:
        self.radius = radius
        self.max_neighbors = max_neighbors
        self.gaussian_step = gaussian_step
        self.gaussian_width = gaussian_width
        self.expand_edges = expand_edges
        self.allow_isolated = allow_isolated
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.edge_vectors = edge_vectors
        self.symmetric = symmetric
        self.site_features = site_features

    def fit(self, X: Any = None, y: Any = None) -> CrystalGraphTransformer:
        """Validate the parameters; nothing is learned. Returns ``self``."""
        self.n_edge_features_ = self.settings().num_gaussians
        return self

    def settings(self) -> GraphSettings:
        """The graph settings of the parameters (validated)."""
        return GraphSettings(
            radius=self.radius,
            max_neighbors=self.max_neighbors,
            gaussian_step=self.gaussian_step,
            gaussian_width=self.gaussian_width,
            symmetric=bool(getattr(self, "symmetric", False)),
        )

    def transform(self, X: Any) -> list[Data]:
        """Convert structures (list, Series or DataFrame with ``structure``) to graphs."""
        return structures_to_graphs(
            X,
            self.settings(),
            expand_edges=self.expand_edges,
            allow_isolated=self.allow_isolated,
            edge_vectors=bool(getattr(self, "edge_vectors", False)),
            n_jobs=self.n_jobs,
            progress=bool(self.verbose),
            site_features=getattr(self, "site_features", None),
        )

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = False
        return tags
