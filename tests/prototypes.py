"""Small prototype crystals written out in code (rock salt, perovskite, fluorite) for tests."""

from __future__ import annotations

import numpy as np
from pymatgen.core import Lattice, Structure

CATIONS = ["Li", "Na", "K", "Mg", "Ca", "Sr", "Ba", "Ni"]
ANIONS = ["F", "Cl", "O", "S"]


def fcc(a: float) -> Lattice:
    """Primitive face-centred cubic lattice of conventional edge ``a`` (Å)."""
    return Lattice([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]])


# Prototype cells are written out directly: Structure.from_spacegroup costs about a second
# per call, too slow for hundreds of test crystals.
def rock_salt(a: str, b: str, lattice: float) -> Structure:
    """Rock-salt AB, primitive cell (2 sites), conventional edge ``lattice`` (Å)."""
    return Structure(fcc(lattice), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]])


def perovskite(a: str, b: str, lattice: float) -> Structure:
    """Cubic ABO3 perovskite (5 sites)."""
    return Structure(
        Lattice.cubic(lattice),
        [a, b, "O", "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
    )


def fluorite(a: str, b: str, lattice: float) -> Structure:
    """Fluorite AB2, primitive cell (3 sites)."""
    return Structure(fcc(lattice), [a, b, b], [[0, 0, 0], [0.25] * 3, [0.75] * 3])


def prototype_dataset() -> tuple[list[Structure], np.ndarray]:
    """36 small crystals of three prototypes; the target is the volume per atom (Å^3)."""
    rng = np.random.default_rng(7)
    structures = []
    for i in range(36):
        kind = i % 3
        a, b = CATIONS[i % len(CATIONS)], ANIONS[(i // 3) % len(ANIONS)]
        if kind == 0:
            s = rock_salt(a, b, rng.uniform(4.2, 6.2))
        elif kind == 1:
            s = perovskite(
                ["Sr", "Ba", "Ca"][(i // 3) % 3],
                ["Ti", "Zr", "Sn"][(i // 9) % 3],
                rng.uniform(3.8, 4.3),
            )
        else:
            s = fluorite(
                ["Ca", "Sr", "Ba"][(i // 3) % 3], ["F", "Cl"][(i // 9) % 2], rng.uniform(5.3, 6.3)
            )
        structures.append(s)
    y = np.array([s.volume / len(s) for s in structures])
    return structures, y
