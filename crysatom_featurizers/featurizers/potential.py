"""Featurizers on universal interatomic potentials (CHGNet, SevenNet).

* :class:`UniversalPotentialSiteFeaturizer`: the potential's latent vector of one site.
* :class:`UniversalPotentialStructureFeaturizer`: statistics of the site vectors, the
  potential's own crystal vector, and optionally its predictions (energy, stress, magnetic
  moments, moduli from small strains) as physical features.

Both are matminer ``BaseFeaturizer``\\ s and scikit-learn transformers. The potential runs in
batches, and its outputs are cached per structure (:func:`crysatom_featurizers.potentials.
structure_key`), so featurizing the same crystals again (a learning curve, a grid search over
heads) costs a lookup. They need the ``[potentials]`` extra; the import of this module does not.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from crysatom_featurizers.featurizers._stats import canonical_stats, reference_stats
from crysatom_featurizers.featurizers.base import BatchFeaturizer
from crysatom_featurizers.featurizers.site import NO_SITE, SiteRowsMixin, site_index
from crysatom_featurizers.graphs.inputs import check_structure

__all__ = [
    "PHYSICS_FEATURES",
    "UniversalPotentialSiteFeaturizer",
    "UniversalPotentialStructureFeaturizer",
]

#: The physical features of :class:`UniversalPotentialStructureFeaturizer`, and what each costs.
PHYSICS_FEATURES: dict[str, str] = {
    "energy": "predicted energy per atom (eV/atom); free",
    "stress": "pressure and von Mises stress of the given cell (GPa); one backward pass",
    "magmom": "mean and max |magnetic moment| per site (μB); free, CHGNet only",
    "bulk_modulus": "K from the pressures at +/- volume_strain, ions clamped (GPa); 2 evaluations",
    "elastic": "Voigt K and G of the clamped-ion elastic tensor, forward differences at "
    "elastic_strain (GPa); 6 evaluations and a backward pass",
}

DEFAULT_SITE_STATS = ("mean", "std_dev", "minimum", "maximum")


def _check_int(name: str, value: Any, minimum: int, allow_none: bool = False) -> None:
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(
            f"{name} must be an integer >= {minimum}{' or None' if allow_none else ''}, "
            f"got {value!r}"
        )


class UniversalPotentialFeaturizer(BatchFeaturizer):
    """Base of the universal-potential featurizers (not used directly).

    Parameters
    ----------
    model : {"chgnet", "sevennet"}, default "chgnet"
    batch_size : int, default 16
        Structures per forward pass of the potential.
    n_jobs : int or None, default 1
        torch threads for the potential's inference (restored afterwards); ``None`` leaves
        torch's setting. No process pool is started: the potential is one model in memory.
    cache : bool, default True
        Reuse the potential's outputs for structures seen before in this process.
    """

    default_column = "structure"
    # a plain attribute here, so that ``n_jobs`` is an ordinary parameter, not matminer's
    # read-only property
    n_jobs: ClassVar[Any] = None

    def __init__(
        self,
        model: str = "chgnet",
        batch_size: int = 16,
        n_jobs: int | None = 1,
        cache: bool = True,
    ):
        self.model = model
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.cache = cache

    def set_n_jobs(self, n_jobs: int) -> None:
        """Set the torch threads of the inference (matminer's hook; no pool is started)."""
        _check_int("n_jobs", n_jobs, 1)
        self.n_jobs = int(n_jobs)

    # ------------------------------------------------------------------ helpers
    def _check_params(self) -> None:
        from crysatom_featurizers.potentials import check_potential_name

        check_potential_name(self.model)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("n_jobs", self.n_jobs, 1, allow_none=True)
        if not isinstance(self.cache, (bool, np.bool_)):
            raise ValueError(f"cache must be True or False, got {self.cache!r}")

    @property
    def potential_(self) -> Any:
        """The loaded :class:`~crysatom_featurizers.potentials.UniversalPotential`."""
        from crysatom_featurizers.potentials import get_potential

        self._check_params()
        return get_potential(self.model)

    def _model_name(self) -> str:
        from crysatom_featurizers.potentials import check_potential_name

        return check_potential_name(self.model)

    def _backend(self) -> Any:
        """The potential's class: dimensions and provenance, without loading it."""
        from crysatom_featurizers.potentials import potential_class

        return potential_class(self.model)

    def _predict(
        self, structures: Sequence[Any], *, stress: bool, pbar: bool
    ) -> tuple[list[Any], dict[int, BaseException]]:
        return self.potential_.predict(
            structures,
            stress=stress,
            batch_size=int(self.batch_size),
            n_threads=self.n_jobs,
            cache=bool(self.cache),
            pbar=pbar,
            desc=f"{self._model_name()} ({type(self).__name__})",
        )

    def _featurize_batch(
        self, entries: Sequence[Any]
    ) -> tuple[np.ndarray, dict[int, BaseException]]:
        return self._run_batch(entries, False)

    def citations(self) -> list[str]:
        """BibTeX of the potential."""
        return [self.potential_.citation]


class UniversalPotentialSiteFeaturizer(SiteRowsMixin, UniversalPotentialFeaturizer):
    """The latent vector a universal potential gives a site.

    CHGNet: the 64 atom features before its last convolution (what
    ``CHGNet.predict_structure(..., return_atom_feas=True)`` returns); SevenNet-0: the 128
    scalar node features of its last interaction block. The vector depends on the site's
    environment, not only on its element.

    Parameters
    ----------
    model : {"chgnet", "sevennet"}, default "chgnet"
    batch_size : int, default 16
    n_jobs : int or None, default 1
    cache : bool, default True
        See :class:`UniversalPotentialStructureFeaturizer`.

    Notes
    -----
    Inputs follow :class:`~crysatom_featurizers.featurizers.ElementEmbeddingSiteFeaturizer`:
    ``featurize(structure, idx)``, ``featurize_many`` of (structure, index) pairs, and
    ``featurize_dataframe(df)`` with one row per site. Each structure runs through the
    potential once, however many of its sites are asked for. Disordered structures, elements
    outside the potential's table and isolated atoms raise a ValueError naming the problem.

    **Output columns.**

    ``"site {model}_{i}"`` for each dimension ``i``.

    Examples
    --------
    >>> featurizer = UniversalPotentialSiteFeaturizer("chgnet")  # doctest: +SKIP
    >>> featurizer.featurize_dataframe(df)  # one row per site  # doctest: +SKIP
    """

    def feature_labels(self) -> list[str]:
        """``"site {model}_{i}"``."""
        self._check_params()
        name = self._model_name()
        return [f"site {name}_{i}" for i in range(self._backend().site_dim)]

    def featurize(self, structure: Any, idx: int) -> list[float]:
        """The latent vector of site ``idx`` of ``structure``.

        Raises
        ------
        IndexError
            When ``idx`` is out of range (the message gives the number of sites).
        ValueError
            For a structure the potential cannot evaluate.
        """
        check_structure(structure)
        index = site_index(structure, idx)
        results, errors = self._predict([structure], stress=False, pbar=False)
        if errors:
            raise errors[0]
        return results[0].site_features[index].astype(np.float64).tolist()

    def _run_batch(
        self, entries: Sequence[Any], pbar: bool
    ) -> tuple[np.ndarray, dict[int, BaseException]]:
        dim = len(self.feature_labels())
        features = np.full((len(entries), dim), np.nan)
        errors: dict[int, BaseException] = {}
        unique: dict[int, int] = {}
        structures: list[Any] = []
        wanted: list[tuple[int, int, int]] = []
        for position, (structure, idx) in enumerate(entries):
            try:
                check_structure(structure)
                index = site_index(structure, idx)
            except Exception as error:
                errors[position] = error
                continue
            slot = unique.setdefault(id(structure), len(structures))
            if slot == len(structures):
                structures.append(structure)
            wanted.append((position, slot, index))
        results, failed = self._predict(structures, stress=False, pbar=pbar)
        for position, slot, index in wanted:
            if slot in failed:
                errors[position] = failed[slot]
            else:
                features[position] = results[slot].site_features[index]
        return features, errors

    def featurize_structures(
        self, structures: Sequence[Any], pbar: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, BaseException]]:
        """Latent vectors of every site of many structures.

        Returns
        -------
        features : numpy.ndarray of float64, shape (n_sites_total, dim)
        structure_position : numpy.ndarray of int64
        site_index : numpy.ndarray of int64
            ``-1`` for the single (NaN) row of a structure that failed.
        errors : dict
            Output row -> exception.
        """
        results, failed = self._predict(list(structures), stress=False, pbar=pbar)
        dim = len(self.feature_labels())
        blocks: list[np.ndarray] = []
        positions: list[np.ndarray] = []
        sites: list[np.ndarray] = []
        errors: dict[int, BaseException] = {}
        offset = 0
        for position, result in enumerate(results):
            if result is None:
                errors[offset] = failed[position]
                blocks.append(np.full((1, dim), np.nan))
                positions.append(np.array([position], dtype=np.int64))
                sites.append(np.array([NO_SITE], dtype=np.int64))
                offset += 1
                continue
            n_sites = len(result.site_features)
            blocks.append(result.site_features.astype(np.float64))
            positions.append(np.full(n_sites, position, dtype=np.int64))
            sites.append(np.arange(n_sites, dtype=np.int64))
            offset += n_sites
        empty = np.zeros(0, dtype=np.int64)
        return (
            np.vstack(blocks) if blocks else np.zeros((0, dim)),
            np.concatenate(positions) if positions else empty,
            np.concatenate(sites) if sites else empty,
            errors,
        )


class UniversalPotentialStructureFeaturizer(UniversalPotentialFeaturizer):
    """A fixed-length vector of a crystal from a universal potential.

    Feature groups, in this order:

    1. **site statistics**: ``stats`` of the potential's site vectors over the sites (each
       site weighted 1/N; matminer ``PropertyStats`` definitions);
    2. **crystal vector**: the potential's own (CHGNet: the site mean of its last convolution);
    3. **physics**: the potential's predictions named in ``physics`` (see
       :data:`PHYSICS_FEATURES`), in physical units.

    Parameters
    ----------
    model : {"chgnet", "sevennet"}, default "chgnet"
        CHGNet 0.3.0 or SevenNet-0, both trained on MPtrj (their weights ship in their wheels).
    stats : sequence of str or (), default ("mean", "std_dev", "minimum", "maximum")
        Statistics of the site vectors; ``()`` leaves the group out.
    crystal_feature : bool or None, default None
        Include the potential's crystal vector; ``None``: where the potential has one.
    physics : sequence of str, default ()
        Any of ``"energy"``, ``"stress"``, ``"magmom"``, ``"bulk_modulus"``, ``"elastic"``.
    volume_strain : float, default 0.02
        Relative volume change of the two cells behind ``"bulk_modulus"``.
    elastic_strain : float, default 0.01
        Strain of the 6 cells behind ``"elastic"`` (their stresses less the given cell's).
    batch_size : int, default 16
        Structures per forward pass.
    n_jobs : int or None, default 1
        torch threads for the inference (restored afterwards); ``None`` leaves torch's setting.
    cache : bool, default True
        Reuse the potential's outputs of structures already seen in this process (strained
        cells included): a second pass over the same crystals costs a lookup.

    Notes
    -----
    The moduli are those of the potential with the ions clamped (no internal relaxation) and
    the cell as given: an estimate, not a relaxed elastic calculation. Disordered structures,
    elements outside the potential's table and isolated atoms raise a ValueError per
    structure; with ``ignore_errors=True`` only that row becomes NaN.

    **Output columns.**

    ``"{stat} {model}_site_{i}"``, ``"{model}_crystal_{i}"`` and, for the physics,
    ``"{model} energy per atom (eV/atom)"``, ``"{model} pressure (GPa)"``,
    ``"{model} von Mises stress (GPa)"``, ``"{model} mean |magmom| (muB)"``,
    ``"{model} max |magmom| (muB)"``, ``"{model} bulk modulus (GPa)"``,
    ``"{model} Voigt bulk modulus (GPa)"`` and ``"{model} Voigt shear modulus (GPa)"``.

    Examples
    --------
    >>> from crysatom_featurizers.featurizers import UniversalPotentialStructureFeaturizer
    >>> featurizer = UniversalPotentialStructureFeaturizer("chgnet", physics=("energy",))
    >>> featurizer.featurize_dataframe(df, "structure")  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str = "chgnet",
        stats: Sequence[str] = DEFAULT_SITE_STATS,
        crystal_feature: bool | None = None,
        physics: Sequence[str] = (),
        volume_strain: float = 0.02,
        elastic_strain: float = 0.01,
        batch_size: int = 16,
        n_jobs: int | None = 1,
        cache: bool = True,
    ):
        super().__init__(model=model, batch_size=batch_size, n_jobs=n_jobs, cache=cache)
        self.stats = stats
        self.crystal_feature = crystal_feature
        self.physics = physics
        self.volume_strain = volume_strain
        self.elastic_strain = elastic_strain

    # ------------------------------------------------------------------ parameters
    def _stats(self) -> tuple[str, ...]:
        if isinstance(self.stats, str):
            return canonical_stats(self.stats)
        return canonical_stats(self.stats) if len(tuple(self.stats)) else ()

    def _physics(self) -> tuple[str, ...]:
        physics = (self.physics,) if isinstance(self.physics, str) else tuple(self.physics)
        unknown = [p for p in physics if p not in PHYSICS_FEATURES]
        if unknown:
            raise ValueError(
                f"unknown physics feature(s) {unknown}; choose from {list(PHYSICS_FEATURES)}"
            )
        if len(set(physics)) != len(physics):
            raise ValueError(f"physics names a feature twice: {list(physics)}")
        name = self._model_name()
        if "magmom" in physics and not self._backend().has_magmom:
            raise ValueError(f"the {name} potential predicts no magnetic moments: drop 'magmom'")
        return physics

    def _crystal(self) -> bool:
        name = self._model_name()
        dim = self._backend().crystal_dim
        if self.crystal_feature is None:
            return dim > 0
        if not isinstance(self.crystal_feature, (bool, np.bool_)):
            raise ValueError(
                f"crystal_feature must be True, False or None, got {self.crystal_feature!r}"
            )
        if self.crystal_feature and dim == 0:
            raise ValueError(
                f"the {name} potential has no crystal vector: set crystal_feature=False or None"
            )
        return bool(self.crystal_feature)

    def _check_params(self) -> None:
        super()._check_params()
        from crysatom_featurizers._checks import check_real

        for name in ("volume_strain", "elastic_strain"):
            value = getattr(self, name)
            check_real(name, value, positive=True)
            if not value <= 0.1:
                raise ValueError(f"{name} must be at most 0.1 (a small strain), got {value!r}")
        stats, crystal, physics = self._stats(), self._crystal(), self._physics()
        if not (stats or crystal or physics):
            raise ValueError("no features: give stats, crystal_feature or physics")

    def feature_labels(self) -> list[str]:
        """Site statistics, crystal vector, then the physics, in that order."""
        self._check_params()
        name = self._model_name()
        backend = self._backend()
        labels = [
            f"{stat} {name}_site_{i}" for stat in self._stats() for i in range(backend.site_dim)
        ]
        if self._crystal():
            labels += [f"{name}_crystal_{i}" for i in range(backend.crystal_dim)]
        for physics in self._physics():
            labels += [f"{name} {label}" for label in _PHYSICS_LABELS[physics]]
        return labels

    # ------------------------------------------------------------------ featurize
    def featurize(self, structure: Any) -> list[float]:
        """Features of one structure.

        Raises
        ------
        TypeError
            When ``structure`` is not a periodic pymatgen Structure.
        ValueError
            For a structure the potential cannot evaluate (the message says why).
        """
        features, errors = self._run_batch([structure], False)
        if errors:
            raise errors[0]
        return features[0].tolist()

    def _run_batch(
        self, entries: Sequence[Any], pbar: bool
    ) -> tuple[np.ndarray, dict[int, BaseException]]:
        from crysatom_featurizers.potentials.base import (
            bulk_modulus_from_stresses,
            elastic_strains,
            isotropic_deformations,
            voigt_moduli_from_stresses,
        )

        labels = self.feature_labels()
        stats, crystal, physics = self._stats(), self._crystal(), self._physics()
        entries = list(entries)
        features = np.full((len(entries), len(labels)), np.nan)
        needs_stress = "stress" in physics or "elastic" in physics
        results, errors = self._predict(entries, stress=needs_stress, pbar=pbar)
        blocks: list[np.ndarray] = []
        good = [i for i, r in enumerate(results) if r is not None]
        if stats:
            block = np.full((len(entries), len(stats) * self._backend().site_dim), np.nan)
            for i in good:
                values = results[i].site_features.astype(np.float64)
                block[i] = reference_stats(values, np.ones(len(values)), stats).ravel()
            blocks.append(block)
        if crystal:
            block = np.full((len(entries), self._backend().crystal_dim), np.nan)
            for i in good:
                block[i] = results[i].crystal_feature
            blocks.append(block)
        kwargs = {
            "batch_size": int(self.batch_size),
            "n_threads": self.n_jobs,
            "cache": bool(self.cache),
            "pbar": pbar,
        }
        for name in physics:
            block = np.full((len(entries), len(_PHYSICS_LABELS[name])), np.nan)
            if name == "energy":
                for i in good:
                    block[i, 0] = results[i].energy
            elif name == "stress":
                for i in good:
                    block[i] = _stress_invariants(results[i].stress)
            elif name == "magmom":
                for i in good:
                    moments = np.abs(results[i].magmom)
                    block[i] = moments.mean(), moments.max()
            else:
                potential = self.potential_
                strained = [entries[i] for i in good]
                if name == "bulk_modulus":
                    stresses, failed = potential.strained_stresses(
                        strained, isotropic_deformations(self.volume_strain), **kwargs
                    )
                    values = bulk_modulus_from_stresses(stresses, self.volume_strain)[:, None]
                else:
                    stresses, failed = potential.strained_stresses(
                        strained, elastic_strains(self.elastic_strain), **kwargs
                    )
                    reference = np.stack([results[i].stress for i in good]) if good else None
                    values = voigt_moduli_from_stresses(stresses, reference, self.elastic_strain)
                for k, i in enumerate(good):
                    if k in failed:
                        errors.setdefault(i, failed[k])
                    else:
                        block[i] = values[k]
            blocks.append(block)
        if blocks:
            features = np.hstack(blocks)
        for i in errors:
            features[i] = np.nan
        return features, errors


def _stress_invariants(stress: np.ndarray) -> tuple[float, float]:
    """Pressure :math:`-\\mathrm{tr}\\,\\sigma/3` and the von Mises stress (GPa)."""
    pressure = -np.trace(stress) / 3.0
    deviator = stress + pressure * np.eye(3)
    return float(pressure), float(np.sqrt(1.5 * np.sum(deviator * deviator)))


_PHYSICS_LABELS = {
    "energy": ("energy per atom (eV/atom)",),
    "stress": ("pressure (GPa)", "von Mises stress (GPa)"),
    "magmom": ("mean |magmom| (muB)", "max |magmom| (muB)"),
    "bulk_modulus": ("bulk modulus (GPa)",),
    "elastic": ("Voigt bulk modulus (GPa)", "Voigt shear modulus (GPa)"),
}
