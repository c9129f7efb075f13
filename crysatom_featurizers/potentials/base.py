"""What every universal interatomic potential gives: per-site latent vectors, an optional
crystal vector, the energy, the stress and the magnetic moments, computed in batches and
cached by structure.

A backend subclasses :class:`UniversalPotential` and implements :meth:`~UniversalPotential.
_prepare` (one structure to the potential's own input, or an error) and
:meth:`~UniversalPotential._run` (a batch of prepared inputs to :class:`PotentialResult`\\ s).
The strained evaluations behind the moduli reuse the same path, so they are batched and
cached too.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from crysatom_featurizers.graphs.inputs import check_structure

__all__ = [
    "EV_PER_A3_TO_GPA",
    "PotentialResult",
    "UniversalPotential",
    "clear_cache",
    "elastic_strains",
    "structure_key",
]

#: 1 eV/Å³ in GPa.
EV_PER_A3_TO_GPA = 160.21766208

# Voigt order xx, yy, zz, yz, xz, xy.
_VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


@dataclass
class PotentialResult:
    """The outputs of a potential for one structure.

    Attributes
    ----------
    site_features : numpy.ndarray of float32, shape (n_sites, site_dim)
        The per-site latent vectors, in the order of the structure's sites.
    crystal_feature : numpy.ndarray of float32 or None
        The potential's own crystal vector, intensive (CHGNet: the site mean of its last
        convolution's features), if it has one.
    energy : float
        Predicted energy per atom (eV/atom).
    stress : numpy.ndarray of float64, shape (3, 3), or None
        Predicted stress (GPa), :math:`\\sigma = V^{-1}\\,\\partial E/\\partial \\varepsilon`:
        negative under compression. ``None`` when it was not asked for.
    magmom : numpy.ndarray of float32 or None
        Predicted magnetic moment of each site (μB), where the potential predicts them.
    """

    site_features: np.ndarray
    crystal_feature: np.ndarray | None
    energy: float
    stress: np.ndarray | None = None
    magmom: np.ndarray | None = None


def structure_key(structure: Any) -> str:
    """A digest of what a potential sees: lattice, fractional coordinates and species.

    Two structures with the same lattice matrix, site order, coordinates and species (with
    occupancies) share the key, whatever else they carry (properties, oxidation states are
    kept in the species string and so do count).
    """
    digest = hashlib.blake2b(digest_size=20)
    digest.update(np.ascontiguousarray(structure.lattice.matrix, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(structure.frac_coords, dtype=np.float64).tobytes())
    digest.update(
        "|".join(
            ",".join(f"{sp}:{occ:.12g}" for sp, occ in site.species.items()) for site in structure
        ).encode()
    )
    return digest.hexdigest()


def elastic_strains(delta: float) -> list[np.ndarray]:
    """The 6 deformation gradients of a forward-difference clamped-ion elastic tensor.

    For each Voigt component ``j`` (xx, yy, zz, yz, xz, xy) a strain of ``+delta``; shear
    components are engineering strains (the tensor entry is ``delta / 2``). The tensor is
    :math:`C_{ij} = (\\sigma_i(\\varepsilon_j) - \\sigma_i(0)) / \\delta`, the given cell's own
    (residual) stress subtracted.
    """
    out = []
    for j in range(6):
        eps = np.zeros((3, 3))
        a, b = _VOIGT[j]
        if a == b:
            eps[a, a] = delta
        else:
            eps[a, b] = eps[b, a] = delta / 2
        out.append(np.eye(3) + eps)
    return out


class _Cache:
    """A bounded, thread-safe LRU of :class:`PotentialResult` keyed by (model, structure)."""

    def __init__(self, max_entries: int = 200_000):
        self.max_entries = max_entries
        self._data: OrderedDict[tuple[str, str], PotentialResult] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> PotentialResult | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: tuple[str, str], value: PotentialResult) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


_CACHE = _Cache()


def clear_cache() -> None:
    """Forget every cached potential output (of every model)."""
    _CACHE.clear()


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch threads (unchanged for ``None``), then restore."""
    import torch

    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class UniversalPotential:
    """A pretrained universal interatomic potential, loaded once per process.

    Use :func:`crysatom_featurizers.potentials.get_potential` to get one by name.
    """

    #: Registry name (``"chgnet"``, ``"sevennet"``).
    name: ClassVar[str]
    #: Length of the site vectors.
    site_dim: ClassVar[int]
    #: Length of the crystal vector (0: none).
    crystal_dim: ClassVar[int] = 0
    #: Whether magnetic moments are predicted.
    has_magmom: ClassVar[bool] = False
    #: Citation (BibTeX).
    citation: ClassVar[str]
    #: Provenance: package, model version, training data, license, leak class.
    info: ClassVar[dict[str, Any]]

    def __init__(self) -> None:
        self._model: Any = None
        self._load_lock = threading.Lock()

    # ---------------------------------------------------------------- backend hooks
    def _load(self) -> Any:
        raise NotImplementedError

    def _supported_z(self) -> set[int]:
        raise NotImplementedError

    def _prepare(self, structure: Any, allow_isolated: bool = False) -> Any:
        """The potential's input for one structure; raises ValueError for what it cannot do
        (a site without neighbours within the cutoff, unless ``allow_isolated``)."""
        raise NotImplementedError

    def _run(self, prepared: Sequence[Any], *, stress: bool) -> list[PotentialResult]:
        raise NotImplementedError

    # ---------------------------------------------------------------- public
    @property
    def model(self) -> Any:
        """The loaded model (loaded on first use)."""
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    @property
    def version(self) -> str:
        """The model version, used in cache keys."""
        return str(self.info.get("model_version", "unknown"))

    def supported_elements(self) -> list[str]:
        """Symbols of the elements this potential evaluates, by atomic number."""
        from crysatom_featurizers.chemistry import element_symbol

        return [element_symbol(z) for z in sorted(self._supported_z())]

    def check(self, structure: Any) -> None:
        """Raise a clear error for a structure this potential cannot evaluate.

        Raises
        ------
        TypeError
            When ``structure`` is not a periodic pymatgen Structure.
        ValueError
            For an empty or disordered structure, or an element outside the potential's table.
        """
        check_structure(structure)
        if len(structure) == 0:
            raise ValueError("structure has no sites")
        if not structure.is_ordered:
            site = next(i for i, s in enumerate(structure) if not s.is_ordered)
            raise ValueError(
                f"site {site} is disordered ({structure[site].species}): a universal potential "
                "needs an ordered structure (one element per site, occupancy 1); order it first, "
                "for example with pymatgen's OrderDisorderedStructureTransformation"
            )
        supported = self._supported_z()
        for index, site in enumerate(structure):
            element = site.specie
            z = getattr(element, "Z", None)
            if z is None or int(z) not in supported:
                raise ValueError(
                    f"site {index}: element {element} is outside the {self.name} potential's "
                    f"table ({len(supported)} elements, Z up to {max(supported)})"
                )

    def predict(
        self,
        structures: Sequence[Any],
        *,
        stress: bool = False,
        batch_size: int = 16,
        n_threads: int | None = None,
        cache: bool = True,
        pbar: bool = False,
        desc: str | None = None,
        allow_isolated: bool = False,
    ) -> tuple[list[PotentialResult | None], dict[int, BaseException]]:
        """Evaluate many structures in batches.

        Parameters
        ----------
        structures : sequence of Structure
        stress : bool, default False
            Also compute the stress (a backward pass: about 2-3x the cost).
        batch_size : int, default 16
            Structures per forward pass.
        n_threads : int, optional
            torch threads for the inference (restored afterwards); ``None`` leaves them.
        cache : bool, default True
            Reuse (and store) results keyed by model and :func:`structure_key`.
        pbar : bool, default False
            Show a progress bar over the batches.
        allow_isolated : bool, default False
            Evaluate a structure with a site that has no neighbour within the potential's
            cutoff (the site then gets no messages, as in a graph network's isolated node)
            instead of failing it.

        Returns
        -------
        results : list of PotentialResult or None
            One per structure; ``None`` where it failed.
        errors : dict
            Position -> exception, for the structures that could not be evaluated.
        """
        from tqdm.auto import tqdm

        results: list[PotentialResult | None] = [None] * len(structures)
        errors: dict[int, BaseException] = {}
        todo: list[tuple[int, tuple[str, str]]] = []
        pending: dict[tuple[str, str], list[int]] = {}
        for position, structure in enumerate(structures):
            try:
                self.check(structure)
                model = f"{self.name}:{self.version}" + ("+isolated" if allow_isolated else "")
                key = (model, structure_key(structure))
            except Exception as error:
                errors[position] = error
                continue
            hit = _CACHE.get(key) if cache else None
            if hit is not None and (hit.stress is not None or not stress):
                results[position] = hit
                continue
            if key in pending:  # the same structure twice in one call runs once
                pending[key].append(position)
                continue
            pending[key] = [position]
            todo.append((position, key))
        if not todo:
            return results, errors
        _ = self.model
        batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
        with torch_threads(n_threads):
            for batch in tqdm(
                batches, disable=not pbar, desc=desc or self.name, unit="batch", leave=False
            ):
                prepared: list[Any] = []
                kept: list[tuple[int, tuple[str, str]]] = []
                for position, key in batch:
                    try:
                        prepared.append(self._prepare(structures[position], allow_isolated))
                        kept.append((position, key))
                    except Exception as error:
                        for same in pending[key]:
                            errors[same] = error
                if not prepared:
                    continue
                for (_, key), result in zip(kept, self._run(prepared, stress=stress)):
                    if cache:
                        _CACHE.put(key, result)
                    for same in pending[key]:
                        results[same] = result
        return results, errors

    def strained_stresses(
        self,
        structures: Sequence[Any],
        deformations: Sequence[np.ndarray],
        **kwargs: Any,
    ) -> tuple[np.ndarray, dict[int, BaseException]]:
        """Stresses (GPa) of each structure under each deformation gradient, ions clamped.

        The lattice of each structure is deformed as :math:`\\mathbf{a}_i' = F\\mathbf{a}_i`
        with the fractional coordinates kept. Returns an array of shape
        (n_structures, n_deformations, 3, 3) (NaN for failed structures) and the errors.
        """
        from pymatgen.core import Lattice

        strained: list[Any] = []
        owner: list[int] = []
        errors: dict[int, BaseException] = {}
        for position, structure in enumerate(structures):
            try:
                self.check(structure)
            except Exception as error:
                errors[position] = error
                continue
            for deformation in deformations:
                copy = structure.copy()
                copy.lattice = Lattice(structure.lattice.matrix @ np.asarray(deformation).T)
                strained.append(copy)
                owner.append(position)
        out = np.full((len(structures), len(deformations), 3, 3), np.nan)
        results, strain_errors = self.predict(strained, stress=True, **kwargs)
        for flat, result in enumerate(results):
            position = owner[flat]
            if result is None:
                errors.setdefault(position, strain_errors[flat])
                continue
            out[position, flat % len(deformations)] = result.stress
        for position in errors:
            out[position] = np.nan
        return out, errors


def bulk_modulus_from_stresses(stresses: np.ndarray, volume_strain: float) -> np.ndarray:
    """K (GPa) from the stresses at volume strains ``+volume_strain`` and ``-volume_strain``.

    ``stresses`` has shape (n, 2, 3, 3); the pressure is :math:`P = -\\mathrm{tr}\\,\\sigma/3`
    and :math:`K = -\\Delta P / \\Delta \\ln V`.
    """
    pressure = -np.trace(stresses, axis1=2, axis2=3) / 3.0
    d_ln_v = np.log1p(volume_strain) - np.log1p(-volume_strain)
    return -(pressure[:, 0] - pressure[:, 1]) / d_ln_v


def isotropic_deformations(volume_strain: float) -> list[np.ndarray]:
    """Deformation gradients that change the volume by ``+volume_strain`` and ``-volume_strain``."""
    return [
        np.eye(3) * (1.0 + volume_strain) ** (1.0 / 3.0),
        np.eye(3) * (1.0 - volume_strain) ** (1.0 / 3.0),
    ]


def voigt_moduli_from_stresses(
    stresses: np.ndarray, reference: np.ndarray, delta: float
) -> np.ndarray:
    """Voigt K and G (GPa) of the clamped-ion tensor from the 6 stresses of
    :func:`elastic_strains` (shape (n, 6, 3, 3)) and the unstrained stresses (shape (n, 3, 3));
    returns shape (n, 2)."""
    n = stresses.shape[0]
    c = np.empty((n, 6, 6))
    for j in range(6):
        diff = (stresses[:, j] - reference) / delta
        for i, (a, b) in enumerate(_VOIGT):
            c[:, i, j] = diff[:, a, b]
    c = 0.5 * (c + np.swapaxes(c, 1, 2))
    diag = c[:, 0, 0] + c[:, 1, 1] + c[:, 2, 2]
    off = c[:, 0, 1] + c[:, 0, 2] + c[:, 1, 2]
    shear = c[:, 3, 3] + c[:, 4, 4] + c[:, 5, 5]
    k_voigt = (diag + 2 * off) / 9.0
    g_voigt = (diag - off + 3 * shear) / 15.0
    return np.stack([k_voigt, g_voigt], axis=1)
