"""Structure featurizers: statistics of the site vectors pooled over a structure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from crysatom_featurizers.chemistry import element_symbol
from crysatom_featurizers.embeddings import DEFAULT_EMBEDDING
from crysatom_featurizers.featurizers._chemistry import (
    site_species,
    structure_species_arrays,
)
from crysatom_featurizers.featurizers._stats import canonical_stats, grouped_stats, reference_stats
from crysatom_featurizers.featurizers.base import (
    ElementEmbeddingFeaturizer,
    PresetEmbeddingMixin,
)
from crysatom_featurizers.featurizers.composition import DEFAULT_STATS
from crysatom_featurizers.graphs.inputs import check_structure

if TYPE_CHECKING:
    from crysatom_featurizers.embeddings import ElementEmbedding

__all__ = [
    "Atom2VecStructureFeaturizer",
    "CrysAtomStructureFeaturizer",
    "ElementEmbeddingStructureFeaturizer",
    "RandomStructureFeaturizer",
    "SkipAtomStructureFeaturizer",
]


class ElementEmbeddingStructureFeaturizer(ElementEmbeddingFeaturizer):
    """Statistics of the site vectors of a structure, each site weighted 1/N.

    The vector of a site is the one :class:`ElementEmbeddingSiteFeaturizer` gives: the element
    vector on an ordered site, :math:`\\sum_s c_s v_s` over the species ``s`` with occupancy
    :math:`c_s` on a disordered site (a vacancy, occupancy sum below 1, contributes a zero
    vector for its share). Sites with the same species and occupancies form one entry whose
    weight is their share of the N sites; the statistics are then matminer's ``PropertyStats``
    over those entries, as in :class:`ElementEmbeddingCompositionFeaturizer`.

    Grouping identical sites makes the features depend only on the fractions of the site
    kinds, so a primitive cell and any supercell of it give identical features, and so does
    any permutation of the sites. For an ordered structure the features equal those of the
    composition featurizer on ``structure.composition``; they differ for disordered
    structures, where ``min``/``max`` run over mixed site vectors instead of the elements.

    Parameters
    ----------
    embedding : str or ElementEmbedding, default "uae"
    dim : int, optional
    stats : sequence of str, default ("mean", "std_dev", "min", "max", "range")
        Statistic names as in :class:`ElementEmbeddingCompositionFeaturizer`.

    Notes
    -----
    A site holding a ``DummySpecies`` or an element the embedding lacks raises
    :class:`~crysatom_featurizers.embeddings.UnknownElementError` naming the site, the element,
    the embedding and its elements; batch methods with ``ignore_errors=True`` turn only that
    structure's row into NaN. Inputs must be periodic pymatgen Structures: anything else, a
    ``Molecule`` included, raises a TypeError.

    **Output columns.**

    ``"{stat} {embedding}_{i}"``, statistic-major, as for the composition featurizer.
    """

    default_column = "structure"

    def __init__(
        self,
        embedding: str | ElementEmbedding = DEFAULT_EMBEDDING,
        dim: int | None = None,
        stats: Sequence[str] = DEFAULT_STATS,
    ):
        super().__init__(embedding=embedding, dim=dim)
        self.stats = stats

    def feature_labels(self) -> list[str]:
        """``"{stat} {embedding}_{i}"``, statistic-major."""
        canonical_stats(self.stats)
        names = [self.stats] if isinstance(self.stats, str) else list(self.stats)
        dims = self.element_labels()
        return [f"{stat} {label}" for stat in names for label in dims]

    def featurize(self, structure: Any) -> list[float]:
        """Features of one structure (the per-item reference).

        Raises
        ------
        UnknownElementError
            For a site with a DummySpecies or an element the embedding lacks.
        TypeError
            When ``structure`` is not a periodic pymatgen Structure (a Molecule included).
        """
        check_structure(structure)
        if len(structure) == 0:
            raise ValueError("structure has no sites")
        embedding = self._resolved().embedding
        kinds: dict[tuple, list] = {}
        for site in structure:
            zs, occupancies, _ = site_species(site)
            key = tuple(sorted(zip(zs, occupancies)))
            if key in kinds:
                kinds[key][1] += 1
                continue
            vector = np.zeros(embedding.dim)
            for species, occupancy in site.species.items():
                vector += float(occupancy) * np.asarray(embedding.vector(species), dtype=np.float64)
            kinds[key] = [vector, 1]
        values = np.stack([vector for vector, _ in kinds.values()])
        counts = np.array([count for _, count in kinds.values()], dtype=np.float64)
        return reference_stats(values, counts, canonical_stats(self.stats)).ravel().tolist()

    def _featurize_batch(
        self, entries: Sequence[Any]
    ) -> tuple[np.ndarray, dict[int, BaseException]]:
        resolved = self._resolved()
        stats = canonical_stats(self.stats)
        n_z = resolved.table.shape[0]
        errors: dict[int, BaseException] = {}
        site_rows: list[np.ndarray] = []
        site_keys: list[np.ndarray] = []
        kind_ids: dict[tuple, int] = {}
        kind_vectors: list[np.ndarray] = []
        for position, structure in enumerate(entries):
            try:
                check_structure(structure)
                n_sites, site_index, z, occupancy, dummy = structure_species_arrays(structure)
                if n_sites == 0:
                    raise ValueError("structure has no sites")
            except Exception as error:
                errors[position] = error
                continue
            if dummy:
                site, symbol = next(iter(dummy.items()))
                errors[position] = resolved.missing_error(symbol, dummy=True, where=f"site {site}")
                continue
            uncovered = ~resolved.covered[z]
            if uncovered.any():
                first = int(np.argmax(uncovered))
                errors[position] = resolved.missing_error(
                    element_symbol(int(z[first])), where=f"site {int(site_index[first])}"
                )
                continue
            if len(z) == n_sites and np.all(occupancy == 1.0):
                keys = z
            else:
                keys = self._site_kind_keys(
                    n_sites, site_index, z, occupancy, kind_ids, kind_vectors, resolved, n_z
                )
            site_rows.append(np.full(n_sites, position, dtype=np.int64))
            site_keys.append(keys)
        if kind_vectors:
            table = np.vstack([resolved.table, np.asarray(kind_vectors)])
        else:
            table = resolved.table
        if site_rows:
            rows = np.concatenate(site_rows)
            keys = np.concatenate(site_keys)
            n_keys = table.shape[0]
            codes, counts = np.unique(rows * n_keys + keys, return_counts=True)
            entry_row, entry_key = np.divmod(codes, n_keys)
            entry_weight = counts.astype(np.float64)
        else:
            entry_row = entry_key = np.zeros(0, dtype=np.int64)
            entry_weight = np.zeros(0)
        features = grouped_stats(table, entry_row, entry_key, entry_weight, len(entries), stats)
        return features, errors

    @staticmethod
    def _site_kind_keys(
        n_sites: int,
        site_index: np.ndarray,
        z: np.ndarray,
        occupancy: np.ndarray,
        kind_ids: dict[tuple, int],
        kind_vectors: list[np.ndarray],
        resolved: Any,
        n_z: int,
    ) -> np.ndarray:
        """Keys of the sites of a structure with partial occupancies.

        A site with one fully occupied species keeps its atomic number as key; any other site
        gets the key ``n_z + j`` of site kind ``j`` (its species and occupancies), whose vector
        :math:`\\sum_s c_s v_s` is appended to ``kind_vectors``.
        """
        keys = np.empty(n_sites, dtype=np.int64)
        boundaries = np.flatnonzero(np.diff(site_index)) + 1
        starts = np.concatenate([[0], boundaries])
        ends = np.concatenate([boundaries, [len(site_index)]])
        for start, end in zip(starts.tolist(), ends.tolist()):
            site = int(site_index[start])
            if end - start == 1 and occupancy[start] == 1.0:
                keys[site] = z[start]
                continue
            kind = tuple(sorted(zip(z[start:end].tolist(), occupancy[start:end].tolist())))
            kind_id = kind_ids.get(kind)
            if kind_id is None:
                kind_id = kind_ids[kind] = len(kind_vectors)
                kind_vectors.append(occupancy[start:end] @ resolved.table[z[start:end]])
            keys[site] = n_z + kind_id
        return keys


class _StructurePreset(PresetEmbeddingMixin, ElementEmbeddingStructureFeaturizer):
    """Base of the structure presets: the generic featurizer without ``embedding``."""

    def __init__(self, *, dim: int | None = None, stats: Sequence[str] = DEFAULT_STATS):
        super().__init__(embedding=self.preset, dim=dim, stats=stats)


class CrysAtomStructureFeaturizer(_StructurePreset):
    """:class:`ElementEmbeddingStructureFeaturizer` on the CrysAtom vectors.

    Always the ``"crysatom"`` embedding: for another one use
    ``ElementEmbeddingStructureFeaturizer(name)`` or
    ``ElementEmbeddingStructureFeaturizer.from_preset(name)``.

    Parameters
    ----------
    dim : int, optional
        1200 (``None``: the read-out chosen on validation) or 50, 100, 200 (final layer,
        as ``crysatom_final``).
    stats : sequence of str, default ("mean", "std_dev", "min", "max", "range")
        As in :class:`ElementEmbeddingStructureFeaturizer`.
    """

    preset = "crysatom"


class Atom2VecStructureFeaturizer(_StructurePreset):
    """:class:`ElementEmbeddingStructureFeaturizer` on the Atom2Vec vectors (``"atom2vec"``).

    Parameters
    ----------
    dim : int, optional
        50, 100 or 200 (``None``: 200).
    stats : sequence of str, default ("mean", "std_dev", "min", "max", "range")
    """

    preset = "atom2vec"


class SkipAtomStructureFeaturizer(_StructurePreset):
    """:class:`ElementEmbeddingStructureFeaturizer` on the SkipAtom vectors (``"skipatom"``).

    Parameters
    ----------
    dim : int, optional
        200 (the only SkipAtom dimension; ``None`` means it).
    stats : sequence of str, default ("mean", "std_dev", "min", "max", "range")
    """

    preset = "skipatom"


class RandomStructureFeaturizer(_StructurePreset):
    """:class:`ElementEmbeddingStructureFeaturizer` on seeded random vectors (``"random"``).

    Parameters
    ----------
    dim : int, optional
        Any positive length (``None``: 200).
    stats : sequence of str, default ("mean", "std_dev", "min", "max", "range")
    """

    preset = "random"
