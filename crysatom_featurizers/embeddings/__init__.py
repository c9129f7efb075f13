"""Element embeddings: one registry of element -> vector maps.

>>> from crysatom_featurizers.embeddings import available, load
>>> emb = load("cgcnn")
>>> emb.vector("Fe2+").shape
(92,)

* :class:`ElementEmbedding`: symbols, float32 vectors, metadata and checksum;
  ``from_dict`` / ``from_csv`` / ``from_json`` and ``to_json`` / ``to_csv``.
* :func:`available`, :func:`load`, :func:`register`: the registry (see
  :mod:`crysatom_featurizers.embeddings.registry` for the built-in names).
* :func:`resolve`: one spec (object, ``"name"``, ``"name:dim"``, file path) -> embedding.
* :func:`cgcnn_feature_table`: CGCNN's 92-dim one-hot features indexed by Z.

This subpackage does not import torch.
"""

from .builtin import (
    DATA_DIR,
    DEFAULT_EMBEDDING,
    EmbeddingNotAvailableError,
    random_embedding,
    vector_file_path,
)
from .cgcnn import cgcnn_bins, cgcnn_feature_names, cgcnn_feature_table
from .core import (
    ELEMENT_SYMBOLS,
    ElementEmbedding,
    EmbeddingFileError,
    UnknownElementError,
    atomic_number,
    vectors_checksum,
)
from .registry import available, load, register, unregister
from .resolve import parse_spec, resolve, spec_label

__all__ = [
    "DATA_DIR",
    "DEFAULT_EMBEDDING",
    "ELEMENT_SYMBOLS",
    "ElementEmbedding",
    "EmbeddingFileError",
    "EmbeddingNotAvailableError",
    "UnknownElementError",
    "atomic_number",
    "available",
    "cgcnn_bins",
    "cgcnn_feature_names",
    "cgcnn_feature_table",
    "load",
    "parse_spec",
    "random_embedding",
    "register",
    "resolve",
    "spec_label",
    "unregister",
    "vector_file_path",
    "vectors_checksum",
]
