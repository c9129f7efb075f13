"""Small example crystals that ship with the package, for demos, docs and tests.

The structures are built from their space group and Wyckoff positions with
:meth:`pymatgen.core.Structure.from_spacegroup`, using room-temperature
experimental lattice parameters (Å) rounded to three decimals. They need no
download and no data file, so the package's main job runs offline.
"""

from __future__ import annotations

from functools import lru_cache

import pandas as pd
from pymatgen.core import Lattice, Structure

__all__ = ["EXAMPLE_PROTOTYPES", "load_example_structures"]

# name -> (space group, lattice builder args, species, fractional coordinates)
# Lattice parameters in Å.
EXAMPLE_PROTOTYPES: dict[str, tuple[str, tuple[str, tuple[float, ...]], list, list]] = {
    "NaCl (rock salt)": ("Fm-3m", ("cubic", (5.640,)), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    "MgO (rock salt)": ("Fm-3m", ("cubic", (4.212,)), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    "CsCl": ("Pm-3m", ("cubic", (4.123,)), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    "Si (diamond)": ("Fd-3m", ("cubic", (5.431,)), ["Si"], [[0, 0, 0]]),
    "GaAs (zinc blende)": (
        "F-43m",
        ("cubic", (5.653,)),
        ["Ga", "As"],
        [[0, 0, 0], [0.25, 0.25, 0.25]],
    ),
    "Cu (fcc)": ("Fm-3m", ("cubic", (3.615,)), ["Cu"], [[0, 0, 0]]),
    "Fe (bcc)": ("Im-3m", ("cubic", (2.867,)), ["Fe"], [[0, 0, 0]]),
    "Mg (hcp)": ("P6_3/mmc", ("hexagonal", (3.209, 5.211)), ["Mg"], [[1 / 3, 2 / 3, 0.25]]),
    "ZnO (wurtzite)": (
        "P6_3mc",
        ("hexagonal", (3.250, 5.207)),
        ["Zn", "O"],
        [[1 / 3, 2 / 3, 0.0], [1 / 3, 2 / 3, 0.382]],
    ),
    "TiO2 (rutile)": (
        "P4_2/mnm",
        ("tetragonal", (4.594, 2.959)),
        ["Ti", "O"],
        [[0, 0, 0], [0.305, 0.305, 0]],
    ),
    "SrTiO3 (perovskite)": (
        "Pm-3m",
        ("cubic", (3.905,)),
        ["Sr", "Ti", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]],
    ),
    "CaF2 (fluorite)": ("Fm-3m", ("cubic", (5.463,)), ["Ca", "F"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
    "Al2O3 (corundum)": (
        "R-3c",
        ("hexagonal", (4.759, 12.991)),
        ["Al", "O"],
        [[0, 0, 0.3522], [0.3064, 0, 0.25]],
    ),
    "LiCoO2 (layered)": (
        "R-3m",
        ("hexagonal", (2.816, 14.052)),
        ["Li", "Co", "O"],
        [[0, 0, 0.5], [0, 0, 0], [0, 0, 0.2604]],
    ),
}


def _lattice(kind: str, params: tuple[float, ...]) -> Lattice:
    return getattr(Lattice, kind)(*params)


@lru_cache(maxsize=1)
def _example_rows() -> tuple[dict, ...]:
    # Building from Wyckoff positions costs ~0.1 s per crystal; do it once per process.
    rows = []
    for name, (spacegroup, (kind, params), species, coords) in EXAMPLE_PROTOTYPES.items():
        structure = Structure.from_spacegroup(spacegroup, _lattice(kind, params), species, coords)
        rows.append(
            {
                "name": name,
                "formula": structure.composition.reduced_formula,
                "structure": structure,
                "n_sites": len(structure),
            }
        )
    return tuple(rows)


def load_example_structures() -> pd.DataFrame:
    """Return the example crystals as a matminer-style DataFrame.

    Returns
    -------
    pandas.DataFrame
        Indexed by a human-readable name, with columns ``formula`` (reduced
        formula), ``structure`` (:class:`pymatgen.core.Structure`, conventional
        cell) and ``n_sites``.

    Examples
    --------
    >>> from crysatom_featurizers.datasets import load_example_structures
    >>> df = load_example_structures()
    >>> df.loc["NaCl (rock salt)", "formula"]
    'NaCl'
    """
    # Fresh copies, so callers may modify the structures without touching the cache.
    rows = [{**row, "structure": row["structure"].copy()} for row in _example_rows()]
    return pd.DataFrame(rows).set_index("name")
