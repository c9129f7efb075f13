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


class _CGCNNBase(_GraphEstimator):
    """:class:`~crysatom_featurizers.nn.CGCNN` as the network of a graph estimator."""

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

    def _network_from_config(self, network: dict[str, Any], state: dict[str, Any]) -> Any:
        """The fitted CGCNN of a safe model file: its architecture and its ``state_dict``."""
        from crysatom_featurizers.nn import CGCNN
        from crysatom_featurizers.nn.element_vectors import embedding_from_table

        if network.get("class") != "CGCNN":
            raise ValueError(f"a {network.get('class')!r} network in a CGCNN estimator")
        embedding = embedding_from_table(
            state["embedding.weight"], state["embedding.covered"], str(self.embedding_name_)
        )
        model = CGCNN.from_config(embedding, network["config"])
        model.load_state_dict(state, strict=True)
        return model.eval()

    def _build_model(self, embedding: Any, n_outputs: int, transfer: Transfer | None) -> Any:
        """The CGCNN to train: from the encoder when fine-tuning, else newly initialised."""
        from crysatom_featurizers.nn import CGCNN

        common = dict(
            h_fea_len=int(self.h_fea_len),
            n_h=int(self.n_h),
            n_targets=int(n_outputs),
            pooling=self.pooling,
            trainable_embeddings=bool(self.trainable_embeddings),
            graph=self._graph_settings(),
        )
        if transfer is not None and transfer.mode == "finetune":
            return CGCNN.from_encoder(transfer.encoder, embedding, **common)
        return CGCNN(
            embedding,
            atom_fea_len=int(
                DEFAULT_ATOM_FEA_LEN if self.atom_fea_len is None else self.atom_fea_len
            ),
            n_conv=int(DEFAULT_N_CONV if self.n_conv is None else self.n_conv),
            **common,
        )
