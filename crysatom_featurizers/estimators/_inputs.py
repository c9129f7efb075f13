"""Input handling of the graph estimators: rows and their labels, validation rows, and the
packed graphs a network reads (not public API)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crysatom_featurizers.estimators._sites import check_graph_sites
from crysatom_featurizers.graphs.inputs import type_name


def items_and_labels(X: Any) -> tuple[list[Any], list[Any]]:
    """Items of ``X`` with their row labels (index labels for pandas, positions otherwise)."""
    from crysatom_featurizers.graphs import iter_structures

    return iter_structures(X, "X", " or of crystal graphs from CrystalGraphTransformer")


def with_validation_rows(X: Any, y: Any, X_val: Any, y_val: Any) -> tuple[Any, Any, int]:
    """``X + X_val`` as one Series (validation labels ``X_val[label]``), ``y + y_val``, and the
    number of validation rows."""
    items, labels = items_and_labels(X)
    v_items, v_labels = items_and_labels(X_val)
    if not v_items:
        raise ValueError("X_val is empty; leave X_val and y_val out to use validation_fraction")
    column = np.empty(len(items) + len(v_items), dtype=object)
    for i, item in enumerate(items + v_items):
        column[i] = item  # item by item: numpy would unpack a Structure into a row
    index = list(labels) + [f"X_val[{label!r}]" for label in v_labels]
    y_arr = y.to_numpy() if isinstance(y, (pd.Series, pd.DataFrame)) else np.asarray(y)
    yv_arr = y_val.to_numpy() if isinstance(y_val, (pd.Series, pd.DataFrame)) else np.asarray(y_val)
    if len(yv_arr) != len(v_items):
        raise ValueError(
            f"X_val and y_val have different lengths: {len(v_items)} structures, "
            f"{len(yv_arr)} targets"
        )
    if len(y_arr) != len(items):
        raise ValueError(
            f"X and y have different lengths: X has {len(items)} structures, y has "
            f"{len(y_arr)} rows"
        )
    if y_arr.ndim != yv_arr.ndim or y_arr.shape[1:] != yv_arr.shape[1:]:
        raise ValueError(
            f"y_val must have the shape of y past the first axis: y {y_arr.shape}, "
            f"y_val {yv_arr.shape}"
        )
    merged = pd.Series(column, index=pd.Index(index, dtype=object), dtype=object)
    return merged, np.concatenate([y_arr, yv_arr]), len(v_items)


class _Inputs:
    """The graphs of ``X`` as a graph estimator reads them (a mixin of the estimator base)."""

    def _graphs_of(self, X: Any, *, for_fit: bool) -> tuple[list[Any], list[Any]]:
        """Graphs of ``X`` (built here from Structures, or taken as given) and row labels."""
        from pymatgen.core import IStructure
        from torch_geometric.data.data import BaseData

        from crysatom_featurizers.graphs import structures_to_graphs
        from crysatom_featurizers.potentials import potential_class

        settings = self.graph_settings()
        options = self._graph_build_options(for_fit)
        sites = options.get("site_features")
        width = 0 if sites is None else potential_class(sites).site_dim
        items, labels = items_and_labels(X)
        if not items:
            raise ValueError(
                f"X is empty: {'fit' if for_fit else 'predict'} needs at least one structure"
            )
        to_build: list[int] = []
        for i, item in enumerate(items):
            if isinstance(item, IStructure):
                to_build.append(i)
            elif isinstance(item, BaseData):
                self._check_input_graph(item, labels[i])
                if sites is not None:
                    check_graph_sites(item, labels[i], sites, width)
            else:
                raise TypeError(
                    f"X[{labels[i]!r}] is a {type_name(item)}; expected a pymatgen Structure "
                    "or a crystal graph (torch_geometric Data) from CrystalGraphTransformer"
                )
        if to_build:
            workers = self.num_workers or 1
            # An object array filled item by item: numpy would otherwise unpack each Structure
            # (a sequence of sites) into a row.
            column = np.empty(len(to_build), dtype=object)
            for j, i in enumerate(to_build):
                column[j] = items[i]
            built = structures_to_graphs(
                pd.Series(column, index=[labels[i] for i in to_build], dtype=object),
                settings,
                expand_edges=False,
                allow_isolated=bool(self.allow_isolated),
                n_jobs=workers,
                progress=self.verbose >= 2,
                **options,
            )
            for i, graph in zip(to_build, built):
                items[i] = graph
        return items, labels

    def _pack(self, X: Any, covered: np.ndarray, embedding_name: str, *, for_fit: bool):
        """Packed graphs of ``X``; raises if an element is not covered by the embedding."""
        import torch

        import crysatom_featurizers.graphs.site_features  # noqa: F401  (registers the field)
        from crysatom_featurizers.graphs import PackedGraphs
        from crysatom_featurizers.nn import check_covered

        graphs, labels = self._graphs_of(X, for_fit=for_fit)
        packed = self._finish_packing(PackedGraphs.from_graphs(graphs))

        def where(entry: int) -> str:
            row = int(torch.searchsorted(packed.species_start, entry, right=True)) - 1
            return f"the structure at row {labels[row]!r}"

        check_covered(
            packed.tensors["species_z"].long(),
            torch.from_numpy(np.array(covered, dtype=bool)),
            embedding_name,
            where,
        )
        return packed, labels
