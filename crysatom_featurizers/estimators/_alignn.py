"""The ALIGNN model base of the estimators: its parameters and its network (not public API)."""

from __future__ import annotations

import math
from typing import Any

from crysatom_featurizers.estimators._base import _GraphEstimator
from crysatom_featurizers.estimators._graph_checks import both_ways, check_graph
from crysatom_featurizers.estimators._transfer import Transfer, check_transfer_params

_ARCHITECTURE = ("hidden_features", "alignn_layers", "gcn_layers")


def _check_config(config: dict[str, Any], state: dict[str, Any]) -> None:
    """The architecture of a model file must be the one its weights have (checked before any
    layer is built, so that no size in the file is trusted on its own)."""
    from crysatom_featurizers.graphs import alignn_graph

    def count(prefix: str) -> int:
        return len({k[len(prefix) :].split(".")[0] for k in state if k.startswith(prefix)})

    bond_in = state["bond_embedding.0.0.weight"]
    expected = {
        "hidden_features": int(state["fc_out.weight"].shape[1]),
        "alignn_layers": count("alignn."),
        "gcn_layers": count("gcn."),
        "embedding_features": int(bond_in.shape[0]),
        "n_targets": int(state["fc_out.weight"].shape[0]),
    }
    for name, value in expected.items():
        if config.get(name) != value:
            raise ValueError(f"{name}={config.get(name)!r} but the weights have {value}")
    graph = dict(config.get("graph", {}))
    n_bins = alignn_graph().num_gaussians
    if int(bond_in.shape[1]) != n_bins:
        raise ValueError(f"the weights take {int(bond_in.shape[1])} bond features, not {n_bins}")
    radius = float(graph.get("radius", 0.0))
    step = float(graph.get("gaussian_step", 0.0))
    if not (radius > 0 and math.isclose(step * (n_bins - 1), radius, rel_tol=1e-6)):
        raise ValueError(f"the graph settings {graph} do not give {n_bins} bond features")


class _ALIGNNBase(_GraphEstimator):
    """:class:`~crysatom_featurizers.nn.ALIGNN` as the network of a graph estimator.

    ALIGNN learns from a CGCNN encoder by distillation only; starting its layers from one
    (``finetune``) has no meaning, so these parameters are fixed here, not in ``__init__``.
    """

    _description = (
        "ALIGNN: edge-gated convolutions over the crystal graph and its line graph of bond "
        "angles (Choudhary & DeCost 2021)"
    )
    finetune = None
    freeze_encoder_epochs = 0
    encoder_lr = None

    def _architecture(self) -> dict[str, int]:
        """``hidden_features``, ``alignn_layers`` and ``gcn_layers``: the preset's, unless
        given."""
        from crysatom_featurizers.nn.alignn import ALIGNN_PRESETS

        preset = ALIGNN_PRESETS[self.preset]
        return {
            k: int(preset[k] if getattr(self, k) is None else getattr(self, k))
            for k in _ARCHITECTURE
        }

    def _check_model_params(self) -> None:
        from crysatom_featurizers.nn.alignn import ALIGNN_PRESETS

        if not isinstance(self.preset, str) or self.preset not in ALIGNN_PRESETS:
            raise ValueError(f"preset must be one of {sorted(ALIGNN_PRESETS)}, got {self.preset!r}")
        for name in _ARCHITECTURE:
            value = getattr(self, name)
            if value is not None:
                self._positive_int(name, 1 if name == "hidden_features" else 0)
        arch = self._architecture()
        n_layers = arch["alignn_layers"] + arch["gcn_layers"]
        if n_layers == 0:
            raise ValueError("alignn_layers and gcn_layers are both 0: the network has no layer")
        self._positive_int("embedding_features")
        check_transfer_params(self, n_layers)

    def graph_settings(self) -> Any:
        """The settings of ALIGNN's undirected crystal graphs this estimator builds and accepts
        (see :func:`crysatom_featurizers.graphs.alignn_graph`)."""
        from crysatom_featurizers.graphs import alignn_graph

        return alignn_graph(float(self.radius), int(self.max_neighbors))

    def _graph_build_options(self, for_fit: bool = True) -> dict[str, Any]:
        return {**super()._graph_build_options(for_fit), "edge_vectors": True}

    def _check_input_graph(self, graph: Any, label: Any) -> None:
        hint = (
            "pass Structures, or build the graphs with CrystalGraphTransformer(edge_vectors=True, "
            "symmetric=True)"
        )
        if getattr(graph, "edge_vec", None) is None:
            raise ValueError(
                f"the graph at row {label!r} has no bond vectors (edge_vec), which ALIGNN needs "
                f"for its bond angles; {hint}"
            )
        if not both_ways(graph.edge_index, graph.edge_vec):
            raise ValueError(
                f"the graph at row {label!r} is directed (a bond lacks its reverse), so its bond "
                f"angles would depend on the site order and the cell; {hint}"
            )
        # bond features are recomputed from edge_dist, so only the edges must agree
        check_graph(graph, label, self.graph_settings(), expansion=False)

    def _finish_packing(self, packed: Any) -> Any:
        from crysatom_featurizers.graphs import add_line_graph

        if self._architecture()["alignn_layers"] == 0:
            return packed  # no layer reads bond angles
        return add_line_graph(packed)

    def _network_type(self) -> type:
        from crysatom_featurizers.nn import ALIGNN

        return ALIGNN

    def _check_network_config(self, config: dict[str, Any], state: dict[str, Any]) -> None:
        _check_config(config, state)

    def _build_model(self, embedding: Any, n_outputs: int, transfer: Transfer | None) -> Any:
        from crysatom_featurizers.nn import ALIGNN

        return ALIGNN(
            embedding,
            **self._architecture(),
            embedding_features=int(self.embedding_features),
            n_targets=int(n_outputs),
            trainable_embeddings=bool(self.trainable_embeddings),
            graph=self.graph_settings(),
            **self._input_options(),
        )
