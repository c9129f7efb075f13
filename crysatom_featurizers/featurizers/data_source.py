"""A matminer elemental-data source backed by any registry embedding.

It plugs CrysAtom, SkipAtom or any other registry embedding into
:class:`matminer.featurizers.composition.ElementProperty` (matminer issue #854 asks for this
for SkipAtom)::

    from matminer.featurizers.composition import ElementProperty
    source = EmbeddingElementData("skipatom")
    featurizer = ElementProperty(
        source, features=source.features, stats=["mean", "std_dev"], impute_nan=False
    )

``impute_nan=False`` because the source handles missing elements itself (``missing=``);
matminer warns about any external source left with its default ``impute_nan=True``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from matminer.utils.data import AbstractData

from crysatom_featurizers.embeddings import DEFAULT_EMBEDDING, resolve
from crysatom_featurizers.featurizers.base import PresetEmbeddingMixin

if TYPE_CHECKING:
    from crysatom_featurizers.embeddings import ElementEmbedding

__all__ = ["CrysAtomElementData", "EmbeddingElementData"]


class EmbeddingElementData(AbstractData):
    """Element-embedding dimensions as matminer elemental properties.

    Property ``"{name}_{i}"`` of an element is dimension ``i`` of its vector, e.g.
    ``"crysatom_12"``.

    Parameters
    ----------
    embedding : str or ElementEmbedding, default "uae"
        Registry name or embedding object.
    dim : int, optional
        Vector length for a registry name (``None``: its default).
    missing : {"raise", "nan"}, default "raise"
        For an element the embedding lacks (or a ``DummySpecies``): raise
        :class:`~crysatom_featurizers.embeddings.UnknownElementError` (a ``ValueError`` naming
        the element, the embedding and its elements; ``ElementProperty`` with
        ``ignore_errors=True`` then gives a NaN row), or return NaN as matminer's own data
        sources do without imputation.

    Attributes
    ----------
    embedding_ : ElementEmbedding
        The resolved embedding.
    features : list of str
        Every property name, ``"{name}_0"`` to ``"{name}_{dim-1}"`` (also ``prop_names`` and
        ``all_properties``, as other matminer data sources name it).

    Examples
    --------
    >>> source = EmbeddingElementData("skipatom")  # doctest: +SKIP
    >>> source.get_elemental_property(Element("Fe"), "skipatom_0")  # doctest: +SKIP
    """

    def __init__(
        self,
        embedding: str | ElementEmbedding = DEFAULT_EMBEDDING,
        dim: int | None = None,
        missing: str = "raise",
    ):
        if missing not in ("raise", "nan"):
            raise ValueError(f"missing must be 'raise' or 'nan', got {missing!r}")
        self.embedding = embedding
        self.dim = dim
        self.missing = missing
        self.embedding_ = resolve(embedding, dim)
        name = self.embedding_.name
        self.features = [f"{name}_{i}" for i in range(self.embedding_.dim)]
        self._columns = {label: i for i, label in enumerate(self.features)}
        self._cache: dict[Any, np.ndarray] = {}

    @property
    def prop_names(self) -> list[str]:
        """Property names (matminer's ``MatscholarElementData`` spelling)."""
        return list(self.features)

    @property
    def all_properties(self) -> list[str]:
        """Property names."""
        return list(self.features)

    def _vector(self, elem: Any) -> np.ndarray | None:
        """float64 vector of ``elem`` (cached), or None for a missing element with ``"nan"``."""
        try:
            return self._cache[elem]
        except (KeyError, TypeError):
            pass
        try:
            vector = np.asarray(self.embedding_.vector(elem), dtype=np.float64)
        except ValueError:
            if self.missing == "raise":
                raise
            return None
        try:
            self._cache[elem] = vector
        except TypeError:  # unhashable input
            pass
        return vector

    def get_elemental_property(self, elem: Any, property_name: str) -> float:
        """Dimension ``property_name`` of the vector of ``elem``.

        Parameters
        ----------
        elem : Element, Species, str
            Species map to their element.
        property_name : str
            ``"{name}_{i}"``.

        Returns
        -------
        float

        Raises
        ------
        KeyError
            For an unknown property name.
        UnknownElementError
            For an element the embedding lacks or a DummySpecies (``missing="raise"``).
        """
        column = self._columns.get(property_name)
        if column is None:
            raise KeyError(
                f"unknown property {property_name!r} for embedding {self.embedding_.name!r}; "
                f"expected one of {self.features[0]!r} .. {self.features[-1]!r}"
            )
        vector = self._vector(elem)
        if vector is None:
            return float("nan")
        return float(vector[column])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state

    def __repr__(self) -> str:
        embedding = (
            ""
            if isinstance(self, PresetEmbeddingMixin)
            else f"embedding={self.embedding_.name!r}, "
        )
        return (
            f"{type(self).__name__}({embedding}dim={self.embedding_.dim}, missing={self.missing!r})"
        )


class CrysAtomElementData(PresetEmbeddingMixin, EmbeddingElementData):
    """:class:`EmbeddingElementData` on the CrysAtom vectors (always ``"crysatom"``).

    For another embedding use ``EmbeddingElementData(name)``.

    Parameters
    ----------
    dim : int, optional
        1200 (``None``: the read-out chosen on validation) or 50, 100, 200 (final layer,
        as ``crysatom_final``).
    missing : {"raise", "nan"}, default "raise"
        As in :class:`EmbeddingElementData`.
    """

    preset = "crysatom"

    def __init__(self, *, dim: int | None = None, missing: str = "raise"):
        super().__init__(embedding=self.preset, dim=dim, missing=missing)
