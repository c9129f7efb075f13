"""Composition featurizers: fraction-weighted statistics of element vectors."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from crysatom_featurizers.embeddings import DEFAULT_EMBEDDING
from crysatom_featurizers.featurizers._chemistry import (
    DUMMY_Z,
    as_composition,
    as_composition_arrays,
)
from crysatom_featurizers.featurizers._stats import canonical_stats, grouped_stats, reference_stats
from crysatom_featurizers.featurizers.base import ElementEmbeddingFeaturizer, PresetEmbeddingMixin

if TYPE_CHECKING:
    from crysatom_featurizers.embeddings import ElementEmbedding

#: Statistics computed by default, in output order.
DEFAULT_STATS: tuple[str, ...] = ("mean", "std_dev", "min", "max", "range")

__all__ = [
    "DEFAULT_STATS",
    "Atom2VecCompositionFeaturizer",
    "CrysAtomCompositionFeaturizer",
    "ElementEmbeddingCompositionFeaturizer",
    "RandomCompositionFeaturizer",
    "SkipAtomCompositionFeaturizer",
]


class ElementEmbeddingCompositionFeaturizer(ElementEmbeddingFeaturizer):
    """Fraction-weighted statistics of the element vectors of a composition.

    Each element of the composition contributes its embedding vector with its atomic fraction
    as weight, and every statistic is taken per embedding dimension with exactly the
    definitions of matminer's ``PropertyStats`` (so the features equal
    ``ElementProperty(data_source=EmbeddingElementData(...), ...)``; see
    :mod:`crysatom_featurizers.featurizers._stats`). In particular ``std_dev`` is
    :math:`\\sqrt{\\sum_k f_k (x_k - \\bar x)^2 / (1 - \\sum_k f_k^2)}`, not the population
    standard deviation, and ``min``/``max``/``range`` are unweighted over the elements present.

    Parameters
    ----------
    embedding : str or ElementEmbedding, default "uae"
        Registry name or embedding object.
    dim : int, optional
        Vector length for a registry name (``None``: its default).
    stats : sequence of str, default ("mean", "std_dev", "min", "max", "range")
        Any of ``mean``, ``std_dev``, ``min``/``minimum``, ``max``/``maximum``, ``range``,
        ``avg_dev``, ``mode``, ``skewness``, ``kurtosis`` (matminer ``PropertyStats`` names).

    Notes
    -----
    Inputs may be a :class:`~pymatgen.core.Composition`, a formula string or a
    :class:`~pymatgen.core.Structure` (its composition is used).

    Chemistry handling:

    * Oxidation-state species map to their element (``Fe2+`` counts as Fe; Fe2+ and Fe3+ in one
      composition add up).
    * Partial occupancies and vacancies: the composition of a disordered structure holds the
      occupancy-weighted amounts, and the fractions are taken over the atoms present (a
      vacancy adds nothing), as in matminer's ``ElementProperty``.
    * An infinite, NaN or negative amount raises a ``ValueError`` naming the element and
      the amount. pymatgen itself drops an amount below 1e-8, and a NaN amount, when a
      ``Composition`` is built (``Composition({"Fe": nan, "O": 1})`` is pure O before this
      featurizer sees it): check the amounts of compositions you build from numbers.
    * A ``DummySpecies``, or an element the embedding lacks, raises
      :class:`~crysatom_featurizers.embeddings.UnknownElementError` (a ``ValueError``) naming
      the element, the embedding and the elements it covers. With ``ignore_errors=True`` in
      the batch methods only that row becomes NaN (plus the error column with
      ``return_errors=True``).

    ``featurize`` is the per-item reference. ``featurize_many``, ``featurize_dataframe`` and
    ``transform`` parse every input once (formula strings through a cache and a fast parser
    that matches pymatgen), then compute all rows with array operations.

    **Output columns.**

    ``"{stat} {embedding}_{i}"`` for each statistic (outer) and dimension ``i`` (inner), e.g.
    ``"mean crysatom_12"``.

    Examples
    --------
    >>> featurizer = ElementEmbeddingCompositionFeaturizer("skipatom", stats=("mean", "max"))
    >>> featurizer.featurize("Fe2O3")[:2]  # doctest: +SKIP
    >>> featurizer.featurize_dataframe(df, "formula")  # doctest: +SKIP
    """

    default_column = "composition"

    def __init__(
        self,
        embedding: str | ElementEmbedding = DEFAULT_EMBEDDING,
        dim: int | None = None,
        stats: Sequence[str] = DEFAULT_STATS,
    ):
        super().__init__(embedding=embedding, dim=dim)
        self.stats = stats

    def _stat_names(self) -> list[str]:
        canonical_stats(self.stats)  # validates
        return [self.stats] if isinstance(self.stats, str) else list(self.stats)

    def feature_labels(self) -> list[str]:
        """``"{stat} {embedding}_{i}"``, statistic-major."""
        dims = self.element_labels()
        return [f"{stat} {label}" for stat in self._stat_names() for label in dims]

    def featurize(self, comp: Any) -> list[float]:
        """Features of one Composition, formula string or Structure.

        Raises
        ------
        UnknownElementError
            For a DummySpecies or an element the embedding lacks.
        TypeError
            For an input of another type.
        ValueError
            For an unparsable formula, an empty composition, or an infinite, NaN or negative
            amount.
        """
        composition = as_composition(comp).element_composition
        if len(composition) == 0:
            raise ValueError(f"empty composition: {comp!r:.80}")
        embedding = self._resolved().embedding
        elements, amounts = zip(*composition.items())
        for element, amount in zip(elements, amounts):
            if not (math.isfinite(amount) and amount >= 0):
                raise _amount_error(str(element), amount, comp)
        values = np.stack([embedding.vector(element) for element in elements])
        stats = reference_stats(values, np.asarray(amounts), canonical_stats(self.stats))
        return stats.ravel().tolist()

    def precheck(self, comp: Any) -> bool:
        """True when every element of ``comp`` has a vector in the embedding."""
        try:
            zs, _, _ = as_composition_arrays(comp)
        except Exception:
            return False
        covered = self._resolved().covered
        return all(z != DUMMY_Z and covered[z] for z in zs)

    def _featurize_batch(
        self, entries: Sequence[Any]
    ) -> tuple[np.ndarray, dict[int, BaseException]]:
        resolved = self._resolved()
        stats = canonical_stats(self.stats)
        n_rows = len(entries)
        errors: dict[int, BaseException] = {}
        z_values: list[int] = []
        amounts: list[float] = []
        counts: list[int] = []
        for position, entry in enumerate(entries):
            try:
                zs, amts, _ = as_composition_arrays(entry)
            except Exception as error:
                errors[position] = error
                counts.append(0)
                continue
            z_values.extend(zs)
            amounts.extend(amts)
            counts.append(len(zs))
        entry_z = np.asarray(z_values, dtype=np.int64)
        entry_weight = np.asarray(amounts, dtype=np.float64)
        entry_row = np.repeat(np.arange(n_rows), counts)
        invalid = ~np.isfinite(entry_weight) | (entry_weight < 0)
        uncovered = ~resolved.covered[entry_z]
        if invalid.any() or uncovered.any():
            for position in np.unique(entry_row[invalid]).tolist():
                errors[position] = self._amount_row_error(entries[position])
            for position in np.unique(entry_row[uncovered]).tolist():
                if position not in errors:
                    errors[position] = self._row_error(resolved, entries[position])
            keep = ~np.isin(entry_row, np.fromiter(errors, dtype=np.int64))
            entry_row, entry_z, entry_weight = entry_row[keep], entry_z[keep], entry_weight[keep]
        features = grouped_stats(resolved.table, entry_row, entry_z, entry_weight, n_rows, stats)
        return features, errors

    @staticmethod
    def _row_error(resolved: Any, entry: Any) -> BaseException:
        """The error for a row holding a DummySpecies or an element the embedding lacks."""
        zs, _, symbols = as_composition_arrays(entry)
        for z, symbol in zip(zs, symbols):
            if z == DUMMY_Z:
                return resolved.missing_error(symbol, dummy=True)
            if not resolved.covered[z]:
                return resolved.missing_error(symbol)
        return ValueError(f"row {entry!r:.80} could not be featurized")  # pragma: no cover

    @staticmethod
    def _amount_row_error(entry: Any) -> BaseException:
        """The error for a row with an infinite, NaN or negative amount."""
        _, amounts, symbols = as_composition_arrays(entry)
        for symbol, amount in zip(symbols, amounts):
            if not (math.isfinite(amount) and amount >= 0):
                return _amount_error(symbol, amount, entry)
        return ValueError(f"row {entry!r:.80} could not be featurized")  # pragma: no cover


def _amount_error(symbol: str, amount: float, entry: Any) -> ValueError:
    """A ValueError naming the element whose amount is not a finite non-negative number."""
    return ValueError(
        f"element {symbol} has amount {amount} in {entry!r:.80}; amounts must be finite and "
        "non-negative"
    )


class _CompositionPreset(PresetEmbeddingMixin, ElementEmbeddingCompositionFeaturizer):
    """Base of the composition presets: the generic featurizer without ``embedding``."""

    def __init__(self, *, dim: int | None = None, stats: Sequence[str] = DEFAULT_STATS):
        super().__init__(embedding=self.preset, dim=dim, stats=stats)


class CrysAtomCompositionFeaturizer(_CompositionPreset):
    """:class:`ElementEmbeddingCompositionFeaturizer` on the CrysAtom vectors.

    Always the ``"crysatom"`` embedding: for another one use
    ``ElementEmbeddingCompositionFeaturizer(name)`` or
    ``ElementEmbeddingCompositionFeaturizer.from_preset(name)``.

    Parameters
    ----------
    dim : int, optional
        1200 (``None``: the read-out chosen on validation) or 50, 100, 200 (final layer,
        as ``crysatom_final``).
    stats : sequence of str, default ("mean", "std_dev", "min", "max", "range")
        As in :class:`ElementEmbeddingCompositionFeaturizer`.
    """

    preset = "crysatom"


class Atom2VecCompositionFeaturizer(_CompositionPreset):
    """:class:`ElementEmbeddingCompositionFeaturizer` on the Atom2Vec vectors (``"atom2vec"``).

    Parameters
    ----------
    dim : int, optional
        50, 100 or 200 (``None``: 200).
    stats : sequence of str, default ("mean", "std_dev", "min", "max", "range")
    """

    preset = "atom2vec"


class SkipAtomCompositionFeaturizer(_CompositionPreset):
    """:class:`ElementEmbeddingCompositionFeaturizer` on the SkipAtom vectors (``"skipatom"``).

    Parameters
    ----------
    dim : int, optional
        200 (the only SkipAtom dimension; ``None`` means it).
    stats : sequence of str, default ("mean", "std_dev", "min", "max", "range")
    """

    preset = "skipatom"


class RandomCompositionFeaturizer(_CompositionPreset):
    """:class:`ElementEmbeddingCompositionFeaturizer` on seeded random vectors (``"random"``).

    The control of the CrysAtom paper (footnote 5): N(0, 1) vectors, seed 0.

    Parameters
    ----------
    dim : int, optional
        Any positive length (``None``: 200).
    stats : sequence of str, default ("mean", "std_dev", "min", "max", "range")
    """

    preset = "random"
