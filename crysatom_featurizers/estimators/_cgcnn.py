"""The CGCNN model base of the estimators: its parameters and its network (not public API)."""

from __future__ import annotations

from typing import Any

from crysatom_featurizers.estimators._base import _GraphEstimator
from crysatom_featurizers.estimators._transfer import (
    DEFAULT_ATOM_FEA_LEN,
    DEFAULT_N_CONV,
    Transfer,
    check_transfer_params,
)

_POOLINGS = ("mean", "sum", "max")


def _check_config(config: dict[str, Any], state: dict[str, Any]) -> None:
    """The architecture of a model file must be the one its weights have (checked before any
    layer is built, so that no size in the file is trusted on its own)."""
    from crysatom_featurizers.graphs import GraphSettings

    def count(prefix: str, depth: int) -> int:
        return len({k.split(".")[depth] for k in state if k.startswith(prefix)})

    atom_fea_len = int(state["encoder.input.weight"].shape[0])
    n_conv = count("encoder.convs.", 2)
    expected = {
        "atom_fea_len": atom_fea_len,
        "n_conv": n_conv,
        "h_fea_len": int(state["conv_to_fc.weight"].shape[0]),
        "n_h": 1 + count("hidden.", 1),
        "n_targets": int(state["fc_out.weight"].shape[0]),
    }
    for name, value in expected.items():
        if config.get(name) != value:
            raise ValueError(f"{name}={config.get(name)!r} but the weights have {value}")
    graph = GraphSettings.from_dict(config.get("graph", {}))
    if n_conv:
        edge_dim = int(state["encoder.convs.0.lin.weight"].shape[1]) - 2 * atom_fea_len
        n_gaussians = int(round(graph.radius / graph.gaussian_step)) + 1  # no array built
        if n_gaussians != edge_dim:
            raise ValueError(
                f"the graph settings give {n_gaussians} edge features, the weights take {edge_dim}"
            )


class _CGCNNBase(_GraphEstimator):
    """:class:`~crysatom_featurizers.nn.CGCNN` as the network of a graph estimator."""

    _description = "CGCNN: gated graph convolutions over the crystal graph (Xie & Grossman 2018)"

    def _check_model_params(self) -> None:
        for name in ("h_fea_len", "n_h"):
            self._positive_int(name)
        if self.atom_fea_len is not None:
            self._positive_int("atom_fea_len")
        if self.n_conv is not None:
            self._positive_int("n_conv", 0)
        n_conv = DEFAULT_N_CONV if self.n_conv is None else int(self.n_conv)
        check_transfer_params(self, n_conv)
        if self.pooling not in _POOLINGS:
            raise ValueError(f"pooling must be one of {_POOLINGS}, got {self.pooling!r}")

    def _network_type(self) -> type:
        from crysatom_featurizers.nn import CGCNN

        return CGCNN

    def _check_network_config(self, config: dict[str, Any], state: dict[str, Any]) -> None:
        _check_config(config, state)

    def _build_model(self, embedding: Any, n_outputs: int, transfer: Transfer | None) -> Any:
        """The CGCNN to train: from the encoder when fine-tuning, else newly initialised."""
        from crysatom_featurizers.nn import CGCNN

        common = dict(
            h_fea_len=int(self.h_fea_len),
            n_h=int(self.n_h),
            n_targets=int(n_outputs),
            pooling=self.pooling,
            trainable_embeddings=bool(self.trainable_embeddings),
            graph=self.graph_settings(),
        )
        if transfer is not None and transfer.mode == "finetune":  # no site vectors (checked)
            return CGCNN.from_encoder(transfer.encoder, embedding, **common)
        return CGCNN(
            embedding,
            atom_fea_len=int(
                DEFAULT_ATOM_FEA_LEN if self.atom_fea_len is None else self.atom_fea_len
            ),
            n_conv=int(DEFAULT_N_CONV if self.n_conv is None else self.n_conv),
            **common,
            **self._input_options(),
        )
