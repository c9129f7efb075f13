"""Element symbols, atomic numbers and species parsing: one home for the whole package.

Plain Python (pymatgen is imported only by :func:`parse_species`), so every layer, the
embeddings included, can use it without import cost.
"""

from __future__ import annotations

from functools import lru_cache
from types import MappingProxyType

__all__ = [
    "ELEMENT_SYMBOLS",
    "SYMBOL_TO_Z",
    "atomic_number",
    "element_symbol",
    "is_element",
    "parse_species",
]

# Canonical symbols of the 118 elements, index i holds Z = i + 1.
# fmt: off
ELEMENT_SYMBOLS: tuple[str, ...] = (
    "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl",
    "Ar", "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As",
    "Se", "Br", "Kr", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In",
    "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb",
    "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl",
    "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm", "Bk",
    "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh",
    "Fl", "Mc", "Lv", "Ts", "Og",
)
# fmt: on
_SYMBOL_TO_Z: dict[str, int] = {symbol: z for z, symbol in enumerate(ELEMENT_SYMBOLS, start=1)}
#: Read-only map from canonical element symbol to atomic number.
SYMBOL_TO_Z = MappingProxyType(_SYMBOL_TO_Z)


def is_element(symbol: str) -> bool:
    """Whether ``symbol`` is one of the 118 canonical element symbols (case-sensitive)."""
    return symbol in _SYMBOL_TO_Z


def atomic_number(symbol: str) -> int:
    """Atomic number of a canonical element symbol (``"Fe"`` -> 26).

    Raises
    ------
    KeyError
        If ``symbol`` is not one of the 118 canonical element symbols.
    """
    return _SYMBOL_TO_Z[symbol]


def element_symbol(z: int, *, strict: bool = True) -> str:
    """Symbol of the element with atomic number ``z`` (1-118).

    Parameters
    ----------
    z : int
        Atomic number.
    strict : bool, default True
        Raise for a number outside 1-118; with ``strict=False`` return ``"Z=<z>"`` instead,
        for error messages about arbitrary input.

    Raises
    ------
    ValueError
        If ``strict`` and ``z`` is not an atomic number.
    """
    z = int(z)
    if 1 <= z <= len(ELEMENT_SYMBOLS):
        return ELEMENT_SYMBOLS[z - 1]
    if strict:
        raise ValueError(f"{z} is not an atomic number (1-{len(ELEMENT_SYMBOLS)})")
    return f"Z={z}"


@lru_cache(maxsize=4096)
def parse_species(text: str) -> tuple[str, str]:
    """Classify a species string.

    Returns ``("element", symbol)`` for an element or an oxidation-state species
    (``"Fe2+"`` -> ``("element", "Fe")``), ``("dummy", text)`` for a pymatgen
    ``DummySpecies`` (``"X0+"``) and ``("invalid", text)`` for anything else.
    """
    from pymatgen.core.periodic_table import DummySpecies, Element, get_el_sp

    try:
        species = get_el_sp(text.strip())
    except (ValueError, KeyError, IndexError, AttributeError, TypeError):
        return "invalid", text
    if isinstance(species, DummySpecies):
        return "dummy", str(species)
    if isinstance(species, Element):
        return "element", species.symbol
    return "element", species.element.symbol
