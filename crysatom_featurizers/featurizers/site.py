"""Site featurizers: the element-embedding vector of one site of a structure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse

from crysatom_featurizers.chemistry import element_symbol
from crysatom_featurizers.embeddings import DEFAULT_EMBEDDING
from crysatom_featurizers.featurizers._chemistry import (
    DUMMY_Z,
    site_species,
    structure_species_arrays,
)
from crysatom_featurizers.featurizers.base import (
    ElementEmbeddingFeaturizer,
    PresetEmbeddingMixin,
    ResolvedEmbedding,
    format_error,
    join_columns,
    reraise_for_row,
)
from crysatom_featurizers.graphs.inputs import check_structure

if TYPE_CHECKING:
    from crysatom_featurizers.embeddings import ElementEmbedding

__all__ = [
    "Atom2VecSiteFeaturizer",
    "CrysAtomSiteFeaturizer",
    "ElementEmbeddingSiteFeaturizer",
    "RandomSiteFeaturizer",
    "SiteRowsMixin",
    "SkipAtomSiteFeaturizer",
]

#: Site index used for the single output row of an input that is not a structure.
NO_SITE = -1


def site_index(structure: Any, idx: Any) -> int:
    """``idx`` as a site index of ``structure`` (negative counts from the end).

    Raises
    ------
    TypeError
        When ``idx`` is not an integer (an integral float such as ``2.0`` is accepted).
    IndexError
        When it is out of range; the message gives the number of sites.
    """
    integral_float = isinstance(idx, (float, np.floating)) and float(idx).is_integer()
    if isinstance(idx, (bool, np.bool_)) or not (
        isinstance(idx, (int, np.integer)) or integral_float
    ):
        raise TypeError(f"site index must be an integer, got {idx!r}")
    n_sites = len(structure)
    if not -n_sites <= int(idx) < n_sites:
        raise IndexError(f"site index {idx} is out of range for a structure of {n_sites} sites")
    return int(idx) % n_sites


class SiteRowsMixin:
    """matminer's site-featurizer input conventions, shared by the site featurizers.

    Batch inputs are ``(structure, site index)`` pairs; :meth:`featurize_dataframe` with a
    single structure column gives one row per site. The class implements
    ``featurize_structures`` (every site of many structures) and ``_featurize_batch``.
    """

    def _normalize_entries(self, entries: Any) -> list[Any]:
        if isinstance(entries, pd.DataFrame):
            if entries.shape[1] != 2:
                raise ValueError(
                    f"{type(self).__name__} takes (structure, site index) pairs, got "
                    f"{entries.shape[1]} columns"
                )
            return list(zip(entries.iloc[:, 0], entries.iloc[:, 1]))
        if not isinstance(entries, (list, tuple, np.ndarray, pd.Series)):
            raise TypeError(f"entries must be list-like, got {type(entries).__name__}")
        items = list(entries)
        for item in items[:1]:
            if not (isinstance(item, (tuple, list, np.ndarray)) and len(item) == 2):
                raise TypeError(
                    f"{type(self).__name__}.featurize_many takes (structure, site index) pairs; "
                    f"got {type(item).__name__}. Use featurize_dataframe(df) for all sites."
                )
        return items

    def featurize_dataframe(
        self,
        df: pd.DataFrame,
        col_id: str | Sequence[str] | None = None,
        ignore_errors: bool = False,
        return_errors: bool = False,
        inplace: bool = False,
        multiindex: bool = False,
        pbar: bool = False,
    ) -> pd.DataFrame | None:
        """Site features for a DataFrame.

        Parameters
        ----------
        df : pandas.DataFrame
        col_id : str or [str, str], default "structure"
            A single structure column: **one output row per site**. The result is indexed by a
            two-level MultiIndex (original row label, ``"site"`` index); its columns are the
            input columns (each input row repeated once per site) followed by the feature
            columns. An input that is not a structure gets one row with site index -1 (NaN
            features, with ``ignore_errors``).
            ``[structure_column, site_column]``: matminer's convention, one output row per
            input row with the vector of that site; the index is unchanged.
        ignore_errors, return_errors, multiindex : bool
            As in matminer; errors are per site.
        inplace : bool
            Only with a site column (a per-site result has new rows).
        pbar : bool
            Show a progress bar where the work is long (the universal-potential featurizer).

        Returns
        -------
        pandas.DataFrame or None
        """
        if col_id is None:
            col_id = self.default_column
        columns = [col_id] if isinstance(col_id, str) else list(col_id)
        if len(columns) == 2:
            entries = list(zip(df[columns[0]], df[columns[1]]))
            return self._attach_rows(
                df,
                entries,
                ignore_errors,
                return_errors,
                inplace,
                multiindex,
                index=df.index,
                pbar=pbar,
            )
        if len(columns) != 1:
            raise ValueError(
                "col_id must be a structure column or [structure column, site column], "
                f"got {columns}"
            )
        if inplace:
            raise ValueError(
                "inplace=True needs a site column: one row per site adds rows to the DataFrame"
            )
        if return_errors and not ignore_errors:
            raise ValueError("Please set ignore_errors to True to use return_errors.")
        features, positions, sites, errors = self.featurize_structures(
            list(df[columns[0]]), pbar=pbar
        )
        index = pd.MultiIndex.from_arrays(
            [df.index.values[positions], sites], names=[df.index.name, "site"]
        )
        if errors and not ignore_errors:
            row = min(errors)
            raise reraise_for_row(errors[row], index[row]) from errors[row]
        return self._attach_site_rows(
            df, features, positions, index, errors, return_errors, multiindex
        )

    def _attach_site_rows(
        self,
        df: pd.DataFrame,
        features: np.ndarray,
        positions: np.ndarray,
        index: pd.MultiIndex,
        errors: dict[int, BaseException],
        return_errors: bool,
        multiindex: bool,
    ) -> pd.DataFrame:
        from matminer.utils.utils import homogenize_multiindex

        labels = self._checked_output_labels(df, multiindex, return_errors)
        result = pd.DataFrame(features, index=index, columns=self.feature_labels(), copy=False)
        if return_errors:
            column = np.full(len(index), np.nan, dtype=object)
            for row, error in errors.items():
                column[row] = format_error(error)
            result[f"{type(self).__name__} Exceptions"] = column
        if multiindex:
            df = homogenize_multiindex(df, "Input Data")
            result.columns = pd.MultiIndex.from_tuples(labels)
        repeated = df.iloc[positions]
        repeated.index = index
        if getattr(self, "_overwrite_data", False):
            repeated = repeated.drop(columns=[c for c in result.columns if c in repeated.columns])
        return join_columns(repeated, result)


class ElementEmbeddingSiteFeaturizer(SiteRowsMixin, ElementEmbeddingFeaturizer):
    """The element-embedding vector of a site.

    Parameters
    ----------
    embedding : str or ElementEmbedding, default "uae"
        Registry name or embedding object.
    dim : int, optional
        Vector length for a registry name (``None``: its default).

    Notes
    -----
    Chemistry handling:

    * Oxidation-state species map to their element (``Fe2+`` gets the Fe vector).
    * A disordered site gets :math:`\\sum_s c_s v_s`, the occupancy-weighted sum of its
      species' vectors; with occupancies summing to 1 this is their occupancy-weighted mean
      (a Fe0.5Ni0.5 site gets the mean of the Fe and Ni vectors).
    * Vacancies (occupancies summing to less than 1) are taken as given, not renormalised: the
      vacant share contributes a zero vector, so a site that is 60 % Li and 40 % empty gets
      0.6 times the Li vector. This matches the node features that
      :class:`crysatom_featurizers.nn.ElementEmbeddingLayer` builds from
      ``species_weight``. matminer's ``SiteElementalProperty`` rejects disordered sites.
    * A ``DummySpecies``, or an element the embedding lacks, raises
      :class:`~crysatom_featurizers.embeddings.UnknownElementError` naming the element, the
      embedding and its elements.
    * Inputs must be periodic pymatgen Structures: anything else, a ``Molecule`` included,
      raises a TypeError.

    :meth:`featurize_dataframe` with a single structure column returns one row per site,
    indexed by (original row label, site index); with ``[structure_column, site_column]`` it
    follows matminer (one output row per input row).

    **Output columns.**

    ``"site {embedding}_{i}"`` for each dimension ``i`` (matminer's ``SiteElementalProperty``
    naming), e.g. ``"site crysatom_12"``.

    Examples
    --------
    >>> featurizer = ElementEmbeddingSiteFeaturizer("skipatom")
    >>> featurizer.featurize(structure, 0)  # doctest: +SKIP
    >>> featurizer.featurize_dataframe(df)  # one row per site  # doctest: +SKIP
    """

    default_column = "structure"

    def __init__(
        self, embedding: str | ElementEmbedding = DEFAULT_EMBEDDING, dim: int | None = None
    ):
        super().__init__(embedding=embedding, dim=dim)

    def feature_labels(self) -> list[str]:
        """``"site {embedding}_{i}"`` for every dimension."""
        return [f"site {label}" for label in self.element_labels()]

    def featurize(self, structure: Any, idx: int) -> list[float]:
        """Vector of site ``idx`` of ``structure`` (the per-item reference).

        Raises
        ------
        UnknownElementError
            For a DummySpecies or an element the embedding lacks.
        IndexError
            When ``idx`` is out of range.
        TypeError
            When ``structure`` is not a periodic pymatgen Structure (a Molecule included).
        """
        check_structure(structure)
        embedding = self._resolved().embedding
        vector = np.zeros(embedding.dim)
        for species, occupancy in structure[site_index(structure, idx)].species.items():
            vector += float(occupancy) * np.asarray(embedding.vector(species), dtype=np.float64)
        return vector.tolist()

    def _featurize_batch(
        self, entries: Sequence[Any]
    ) -> tuple[np.ndarray, dict[int, BaseException]]:
        """Vectors of (structure, site index) pairs."""
        resolved = self._resolved()
        errors: dict[int, BaseException] = {}
        out_row: list[int] = []
        z_values: list[int] = []
        weights: list[float] = []
        for position, (structure, idx) in enumerate(entries):
            try:
                check_structure(structure)
                zs, occupancies, symbols = site_species(structure[site_index(structure, idx)])
            except Exception as error:
                errors[position] = error
                continue
            missing = [s for z, s in zip(zs, symbols) if z == DUMMY_Z or not resolved.covered[z]]
            if missing:
                dummy = DUMMY_Z in zs
                errors[position] = resolved.missing_error(missing[0], dummy=dummy)
                continue
            out_row.extend([position] * len(zs))
            z_values.extend(zs)
            weights.extend(occupancies)
        features = _site_vectors(
            resolved,
            len(entries),
            np.asarray(out_row, dtype=np.int64),
            np.asarray(z_values, dtype=np.int64),
            np.asarray(weights, dtype=np.float64),
        )
        for position in errors:
            features[position] = np.nan
        return features, errors

    def featurize_structures(
        self, structures: Sequence[Any], pbar: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, BaseException]]:
        """Vectors of every site of many structures, on the vectorized path.

        Parameters
        ----------
        structures : sequence of Structure
        pbar : bool, default False
            Accepted for the common site-featurizer signature; a lookup shows no bar.

        Returns
        -------
        features : numpy.ndarray of float64, shape (n_sites_total, dim)
        structure_position : numpy.ndarray of int64
            Position in ``structures`` of each output row.
        site_index : numpy.ndarray of int64
            Site index of each output row (``-1`` for the single row of an input that is not
            a structure).
        errors : dict
            Output row -> exception, for sites (or inputs) that could not be featurized;
            their rows are NaN.
        """
        resolved = self._resolved()
        errors: dict[int, BaseException] = {}
        positions: list[np.ndarray] = []
        site_indices: list[np.ndarray] = []
        entry_out: list[np.ndarray] = []
        entry_z: list[np.ndarray] = []
        entry_weight: list[np.ndarray] = []
        offset = 0
        for position, structure in enumerate(structures):
            try:
                check_structure(structure)
                n_sites, site_index, z, occupancy, dummy = structure_species_arrays(structure)
            except Exception as error:
                errors[offset] = error
                positions.append(np.array([position], dtype=np.int64))
                site_indices.append(np.array([NO_SITE], dtype=np.int64))
                offset += 1
                continue
            positions.append(np.full(n_sites, position, dtype=np.int64))
            site_indices.append(np.arange(n_sites, dtype=np.int64))
            bad = (z == DUMMY_Z) | ~resolved.covered[z]
            if bad.any():
                for entry in np.flatnonzero(bad).tolist():
                    site = int(site_index[entry])
                    if offset + site in errors:
                        continue
                    if z[entry] == DUMMY_Z:
                        error = resolved.missing_error(
                            dummy[site], dummy=True, where=f"site {site}"
                        )
                    else:
                        symbol = element_symbol(int(z[entry]))
                        error = resolved.missing_error(symbol, where=f"site {site}")
                    errors[offset + site] = error
                keep = ~bad
                site_index, z, occupancy = site_index[keep], z[keep], occupancy[keep]
            entry_out.append(site_index + offset)
            entry_z.append(z)
            entry_weight.append(occupancy)
            offset += n_sites
        empty = np.zeros(0, dtype=np.int64)
        features = _site_vectors(
            resolved,
            offset,
            np.concatenate(entry_out) if entry_out else empty,
            np.concatenate(entry_z) if entry_z else empty,
            np.concatenate(entry_weight) if entry_weight else np.zeros(0),
        )
        if errors:
            features[np.fromiter(errors, dtype=np.int64)] = np.nan
        return (
            features,
            np.concatenate(positions) if positions else empty,
            np.concatenate(site_indices) if site_indices else empty,
            errors,
        )


def _site_vectors(
    resolved: ResolvedEmbedding,
    n_out: int,
    out_row: np.ndarray,
    z: np.ndarray,
    weight: np.ndarray,
) -> np.ndarray:
    """Rows :math:`\\sum_e w_e\\, \\mathrm{table}[z_e]` over the entries ``e`` of each output row.

    All ``z`` must be covered. Output rows without entries are zero (callers set error rows to
    NaN).
    """
    if out_row.size == n_out and np.array_equal(out_row, np.arange(n_out)) and np.all(weight == 1):
        return resolved.table[z]  # ordered sites: a plain gather
    table = np.nan_to_num(resolved.table, nan=0.0)
    matrix = scipy.sparse.csr_matrix((weight, (out_row, z)), shape=(n_out, table.shape[0]))
    return np.asarray(matrix @ table)


class _SitePreset(PresetEmbeddingMixin, ElementEmbeddingSiteFeaturizer):
    """Base of the site presets: the generic featurizer without ``embedding``."""

    def __init__(self, *, dim: int | None = None):
        super().__init__(embedding=self.preset, dim=dim)


class CrysAtomSiteFeaturizer(_SitePreset):
    """:class:`ElementEmbeddingSiteFeaturizer` on the CrysAtom vectors.

    Always the ``"crysatom"`` embedding: for another one use
    ``ElementEmbeddingSiteFeaturizer(name)`` or
    ``ElementEmbeddingSiteFeaturizer.from_preset(name)``.

    Parameters
    ----------
    dim : int, optional
        1200 (``None``: the read-out chosen on validation) or 50, 100, 200 (final layer,
        as ``crysatom_final``).
    """

    preset = "crysatom"


class Atom2VecSiteFeaturizer(_SitePreset):
    """:class:`ElementEmbeddingSiteFeaturizer` on the Atom2Vec vectors (always ``"atom2vec"``).

    Parameters
    ----------
    dim : int, optional
        50, 100 or 200 (``None``: 200).
    """

    preset = "atom2vec"


class SkipAtomSiteFeaturizer(_SitePreset):
    """:class:`ElementEmbeddingSiteFeaturizer` on the SkipAtom vectors (always ``"skipatom"``).

    Parameters
    ----------
    dim : int, optional
        200 (the only SkipAtom dimension; ``None`` means it).
    """

    preset = "skipatom"


class RandomSiteFeaturizer(_SitePreset):
    """:class:`ElementEmbeddingSiteFeaturizer` on seeded random vectors (always ``"random"``).

    Parameters
    ----------
    dim : int, optional
        Any positive length (``None``: 200).
    """

    preset = "random"
