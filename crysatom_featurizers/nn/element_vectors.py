"""Element vectors out of a trained model: its element table after the input map."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from crysatom_featurizers.chemistry import element_symbol
from crysatom_featurizers.embeddings import ElementEmbedding

__all__ = ["element_embedding_from_model", "embedding_from_table"]


def _network(model: Any) -> Any:
    """The torch module behind a fitted estimator or a distillation wrapper."""
    network = getattr(model, "model_", model)
    if not hasattr(network, "element_input_vectors"):
        network = getattr(network, "student", network)
    if not hasattr(network, "element_input_vectors"):
        raise TypeError(
            f"{type(model).__name__} has no element table to read: pass a fitted "
            "graph estimator whose network has an element input map (CGCNNRegressor, "
            "CGCNNClassifier), a CGCNN or a CrystalTransformer"
        )
    return network


def element_embedding_from_model(
    model: Any,
    name: str,
    *,
    elements: Iterable[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> ElementEmbedding:
    """The element vectors a trained model has learned, as an :class:`ElementEmbedding`.

    Each element's vector is its node vector after the model's element input map: the input
    vector of the element (its embedding row, fine-tuned when the table was trainable) passed
    through the first linear layer, as the model's first convolution or attention layer sees
    it. With one-hot inputs this is the learned row of the input map, the "universal atomic
    embedding" of CrystalTransformer (Jin et al., 2024); with frozen inputs, the linear map
    the model learned on top of them.

    Parameters
    ----------
    model : CGCNNRegressor, CGCNNClassifier, CGCNN or CrystalTransformer
        A fitted estimator or a torch model (anything with ``element_input_vectors()``).
    name : str
        Name of the new embedding (used in feature labels).
    elements : iterable of str, optional
        Keep only these elements (e.g. those present in the training crystals: the vectors of
        elements a model never saw are untrained). Default: every element of the table.
    metadata : mapping, optional
        Provenance stored with the vectors (how the model was trained).

    Returns
    -------
    ElementEmbedding

    Raises
    ------
    TypeError
        If ``model`` has no element table (e.g. an unfitted estimator).
    ValueError
        If ``elements`` names an element the table does not cover.

    Examples
    --------
    >>> from crysatom_featurizers.nn import CGCNN, element_embedding_from_model
    >>> model = CGCNN("onehot", atom_fea_len=16, n_conv=1)
    >>> vectors = element_embedding_from_model(model, "my_vectors", elements=["Fe", "O"])
    >>> vectors.dim, vectors.symbols
    (16, ['Fe', 'O'])
    """
    if hasattr(model, "get_params") and not hasattr(model, "model_"):
        raise TypeError(f"this {type(model).__name__} is not fitted yet: call fit first")
    network = _network(model)
    table, covered = network.element_input_vectors()
    table = table.detach().cpu().numpy().astype(np.float64)
    covered = covered.detach().cpu().numpy()
    z_covered = [int(z) for z in np.flatnonzero(covered)]
    by_symbol = {element_symbol(z): z for z in z_covered}
    if elements is None:
        symbols = list(by_symbol)
    else:
        symbols = [str(e) for e in elements]
        missing = [s for s in symbols if s not in by_symbol]
        if missing:
            raise ValueError(
                f"the model's element table does not cover {missing}; it covers "
                f"{len(by_symbol)} elements"
            )
    rows = [by_symbol[s] for s in symbols]
    info = {"source": f"element input map of a trained {type(network).__name__}"}
    return ElementEmbedding(name, symbols, table[rows], {**info, **dict(metadata or {})})


def embedding_from_table(table: Any, covered: Any, name: str) -> ElementEmbedding:
    """The :class:`ElementEmbedding` of a lookup table (``Float[max_z + 1, d]``, indexed by
    atomic number) and its coverage mask (``Bool[max_z + 1]``), e.g. an
    :class:`~crysatom_featurizers.nn.ElementEmbeddingLayer`'s ``weight`` and ``covered``."""
    table = np.asarray(table, dtype=np.float64)
    z_covered = np.flatnonzero(np.asarray(covered, dtype=bool))
    return ElementEmbedding(name, [element_symbol(int(z)) for z in z_covered], table[z_covered])
