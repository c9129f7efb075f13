"""Universal interatomic potentials as sources of pretrained knowledge.

Two potentials whose weights ship inside their wheels, so they run offline:

* ``"chgnet"``: CHGNet 0.3.0 (Deng et al. 2023), 64-dim site and crystal vectors, energy,
  stress, magnetic moments.
* ``"sevennet"``: SevenNet-0 (Park et al. 2024), 128-dim site vectors, energy, stress.

Both were trained on MPtrj (Materials Project relaxations), so their knowledge has *seen* the
MP formation energies and is *related* to JARVIS formation energies; band gaps and elastic
moduli were never labels. MACE-MP, MatGL, ORB, MatterSim and fairchem models download their
weights at run time and are not offered. Install the backends with the ``[potentials]`` extra.
Use them through the featurizers in :mod:`crysatom_featurizers.featurizers`
(``UniversalPotentialSiteFeaturizer``, ``UniversalPotentialStructureFeaturizer``).
"""

from __future__ import annotations

import importlib
import threading

from crysatom_featurizers.potentials.base import (
    PotentialResult,
    UniversalPotential,
    clear_cache,
    structure_key,
)

__all__ = [
    "POTENTIALS",
    "POTENTIALS_INSTALL_HINT",
    "MissingPotentialDependencyError",
    "PotentialResult",
    "UniversalPotential",
    "clear_cache",
    "get_potential",
    "potential_class",
    "structure_key",
]

#: name -> (module with the backend class, class name, packages it needs)
POTENTIALS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "chgnet": ("crysatom_featurizers.potentials.chgnet", "CHGNetPotential", ("torch", "chgnet")),
    "sevennet": (
        "crysatom_featurizers.potentials.sevennet",
        "SevenNetPotential",
        ("torch", "torch_geometric", "sevenn"),
    ),
}

POTENTIALS_INSTALL_HINT = (
    "pip install torch --index-url https://download.pytorch.org/whl/cpu && "
    "pip install 'crysatom-featurizers[gnn,potentials]' (torch first, from PyTorch's CPU index)"
)


class MissingPotentialDependencyError(ImportError):
    """The package of a universal potential is not installed."""


_LOADED: dict[str, UniversalPotential] = {}
_LOCK = threading.Lock()


def check_potential_name(model: object) -> str:
    """``model`` lower-cased if it names a known potential; a ValueError listing them if not."""
    if not isinstance(model, str) or model.strip().lower() not in POTENTIALS:
        raise ValueError(
            f"unknown universal potential {model!r}; known: {', '.join(POTENTIALS)} (MACE, "
            "MatGL, ORB, MatterSim and fairchem download their weights at run time and are not "
            "offered)"
        )
    return model.strip().lower()


def potential_class(model: str) -> type[UniversalPotential]:
    """The backend class of ``model``: its dimensions and provenance, without importing torch."""
    module_name, class_name, _ = POTENTIALS[check_potential_name(model)]
    return getattr(importlib.import_module(module_name), class_name)


def get_potential(model: str) -> UniversalPotential:
    """The potential ``model`` (``"chgnet"`` or ``"sevennet"``), one instance per process.

    Raises
    ------
    ValueError
        For an unknown name.
    MissingPotentialDependencyError
        When its package is not installed; the message names the ``[potentials]`` extra.
    """
    name = check_potential_name(model)
    with _LOCK:
        if name not in _LOADED:
            module_name, class_name, packages = POTENTIALS[name]
            for package in packages:
                try:
                    importlib.import_module(package)
                except ImportError as exc:
                    raise MissingPotentialDependencyError(
                        f"the {name!r} potential needs the {package!r} package ({exc}); install "
                        f"the [potentials] extra: {POTENTIALS_INSTALL_HINT}"
                    ) from None
            _LOADED[name] = potential_class(name)()
        return _LOADED[name]
