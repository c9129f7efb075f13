"""Turn compositions, formulas and structures into (atomic number, amount) arrays.

These helpers are shared by the composition, structure and site featurizers. They map
oxidation-state species (``Fe2+``) to their element, merge entries of one element, and mark
``DummySpecies`` with atomic number 0, a row that no embedding covers. Formula strings take a
cached fast path that reproduces :class:`pymatgen.core.Composition` parsing for plain and
bracketed formulas (``Fe2O3``, ``MoW3(SeS3)2``) and falls back to pymatgen for anything else.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from pymatgen.core import Composition, DummySpecies, Element, Species
from pymatgen.core.structure import SiteCollection

from crysatom_featurizers.chemistry import ELEMENT_SYMBOLS, SYMBOL_TO_Z

#: Atomic number used for a ``DummySpecies``: row 0 of every lookup table is NaN and uncovered.
DUMMY_Z = 0


# Plain formulas (symbols with optional decimal amounts, e.g. "Fe2O3", "Li0.5CoO2") and
# bracketed ones ("MoW3(SeS3)2"); validated whole with fullmatch, then tokenised with findall.
_AMOUNT = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PLAIN_RE = re.compile(rf"(?:[A-Z][a-z]*{_AMOUNT}?)+")
_PLAIN_TOKEN_RE = re.compile(rf"([A-Z][a-z]*)({_AMOUNT}?)")
_BRACKETED_RE = re.compile(rf"(?:[A-Z][a-z]*{_AMOUNT}?|[(\[{{]|[)\]}}]{_AMOUNT}?)+")
_BRACKETED_TOKEN_RE = re.compile(rf"([A-Z][a-z]*)({_AMOUNT}?)|([(\[{{])|[)\]}}]({_AMOUNT}?)")

# Amounts below this are dropped by pymatgen's Composition; formulas with such amounts go
# through pymatgen so the result matches it exactly.
_AMOUNT_TOLERANCE = Composition.amount_tolerance

_FORMULA_CACHE: dict[str, tuple[tuple[int, ...], tuple[float, ...], tuple[str, ...]]] = {}
_FORMULA_CACHE_MAX = 200_000


class CompositionInputError(TypeError):
    """An input that is neither a Composition, a formula string nor a Structure."""


def _fast_parse(formula: str) -> dict[int, float] | None:
    """Parse a plain or bracketed formula; ``None`` when pymatgen must decide."""
    amounts: dict[int, float] = {}
    if _PLAIN_RE.fullmatch(formula) is not None:
        for symbol, amount in _PLAIN_TOKEN_RE.findall(formula):
            z = SYMBOL_TO_Z.get(symbol)
            if z is None:
                return None
            amounts[z] = amounts.get(z, 0.0) + (float(amount) if amount else 1.0)
    elif _BRACKETED_RE.fullmatch(formula) is not None:
        stack = [amounts]
        for symbol, amount, opening, multiplier in _BRACKETED_TOKEN_RE.findall(formula):
            if symbol:
                z = SYMBOL_TO_Z.get(symbol)
                if z is None:
                    return None
                group = stack[-1]
                group[z] = group.get(z, 0.0) + (float(amount) if amount else 1.0)
            elif opening:
                stack.append({})
            else:
                if len(stack) == 1:
                    return None
                inner = stack.pop()
                factor = float(multiplier) if multiplier else 1.0
                outer = stack[-1]
                for z, value in inner.items():
                    outer[z] = outer.get(z, 0.0) + value * factor
        if len(stack) != 1:
            return None
    else:
        return None
    if not amounts or min(amounts.values()) < _AMOUNT_TOLERANCE:
        return None
    return amounts


def _species_z(species: Any) -> tuple[int, str]:
    """Atomic number and symbol of an element or species; ``DUMMY_Z`` for a DummySpecies."""
    if isinstance(species, DummySpecies):
        return DUMMY_Z, str(species)
    if isinstance(species, Species):
        element = species.element
        return element.Z, element.symbol
    if isinstance(species, Element):
        return species.Z, species.symbol
    element = Element(str(species))
    return element.Z, element.symbol


def composition_arrays(
    composition: Composition,
) -> tuple[tuple[int, ...], tuple[float, ...], tuple[str, ...]]:
    """Atomic numbers, amounts and symbols of a composition, merged by element.

    Oxidation-state species map to their element (``Fe2+`` and ``Fe3+`` add up as Fe). A
    ``DummySpecies`` keeps its own entry with atomic number ``DUMMY_Z``.
    """
    merged: dict[Any, float] = {}
    symbols: dict[Any, str] = {}
    for species, amount in composition.items():
        z, symbol = _species_z(species)
        key = symbol if z == DUMMY_Z else z
        merged[key] = merged.get(key, 0.0) + float(amount)
        symbols[key] = symbol
    zs = tuple(DUMMY_Z if isinstance(key, str) else key for key in merged)
    return zs, tuple(merged.values()), tuple(symbols.values())


def parse_formula(formula: str) -> tuple[tuple[int, ...], tuple[float, ...], tuple[str, ...]]:
    """Cached ``(atomic numbers, amounts, symbols)`` of a formula string.

    Raises
    ------
    ValueError
        When pymatgen cannot parse the formula.
    """
    cached = _FORMULA_CACHE.get(formula)
    if cached is not None:
        return cached
    amounts = _fast_parse(formula)
    if amounts is None:
        result = composition_arrays(Composition(formula))
        if not result[0]:
            raise ValueError(f"formula {formula!r} has no elements")
    else:
        zs = tuple(amounts)
        result = (zs, tuple(amounts.values()), tuple(ELEMENT_SYMBOLS[z - 1] for z in zs))
    if len(_FORMULA_CACHE) >= _FORMULA_CACHE_MAX:
        _FORMULA_CACHE.clear()
    _FORMULA_CACHE[formula] = result
    return result


def clear_formula_cache() -> None:
    """Empty the formula cache (used by benchmarks to time cold parsing)."""
    _FORMULA_CACHE.clear()


def as_composition_arrays(
    entry: Any,
) -> tuple[tuple[int, ...], tuple[float, ...], tuple[str, ...]]:
    """``(atomic numbers, amounts, symbols)`` of a Composition, formula string or Structure.

    Raises
    ------
    CompositionInputError
        For any other input type.
    ValueError
        For an unparsable formula.
    """
    if isinstance(entry, str):
        return parse_formula(entry)
    if isinstance(entry, Composition):
        result = composition_arrays(entry)
    elif isinstance(entry, SiteCollection):
        result = composition_arrays(entry.composition)
    else:
        raise CompositionInputError(
            "expected a pymatgen Composition, a formula string or a Structure, "
            f"got {type(entry).__name__}: {entry!r:.80}"
        )
    if not result[0]:
        raise ValueError(f"empty composition: {entry!r:.80}")
    return result


def as_composition(entry: Any) -> Composition:
    """A pymatgen Composition from a Composition, formula string or Structure."""
    if isinstance(entry, Composition):
        return entry
    if isinstance(entry, str):
        return Composition(entry)
    if isinstance(entry, SiteCollection):
        return entry.composition
    raise CompositionInputError(
        "expected a pymatgen Composition, a formula string or a Structure, "
        f"got {type(entry).__name__}: {entry!r:.80}"
    )


def site_species(site: Any) -> tuple[list[int], list[float], list[str]]:
    """Atomic numbers, occupancies and symbols of the species on one site, merged by element."""
    zs: list[int] = []
    occupancies: list[float] = []
    symbols: list[str] = []
    for species, occupancy in site.species.items():
        z, symbol = _species_z(species)
        if z != DUMMY_Z and z in zs:
            occupancies[zs.index(z)] += float(occupancy)
            continue
        zs.append(z)
        occupancies.append(float(occupancy))
        symbols.append(symbol)
    return zs, occupancies, symbols


def structure_species_arrays(
    structure: Any,
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, dict[int, str]]:
    """Per-(site, species) arrays of a structure.

    Returns
    -------
    n_sites : int
    site_index : numpy.ndarray of int64, shape (S,)
        Site of each species entry.
    z : numpy.ndarray of int64, shape (S,)
        Atomic number of the entry's element (``DUMMY_Z`` for a DummySpecies).
    occupancy : numpy.ndarray of float64, shape (S,)
        Occupancy of the entry (1.0 on an ordered site).
    dummy : dict
        Site index -> symbol of the first DummySpecies on that site.

    Raises
    ------
    TypeError
        When ``structure`` is not a pymatgen Structure.
    """
    if not isinstance(structure, SiteCollection):
        raise TypeError(
            f"expected a pymatgen Structure, got {type(structure).__name__}: {structure!r:.80}"
        )
    site_index: list[int] = []
    zs: list[int] = []
    occupancies: list[float] = []
    dummy: dict[int, str] = {}
    z_cache: dict[Any, tuple[int, str]] = {}
    for i, site in enumerate(structure.sites):
        species = site.species
        if len(species) == 1:
            ((sp, occupancy),) = species.items()
            hit = z_cache.get(sp)
            if hit is None:
                hit = z_cache[sp] = _species_z(sp)
            site_index.append(i)
            zs.append(hit[0])
            occupancies.append(float(occupancy))
            if hit[0] == DUMMY_Z:
                dummy.setdefault(i, hit[1])
            continue
        site_zs, site_occupancies, site_symbols = site_species(site)
        for z, occupancy, symbol in zip(site_zs, site_occupancies, site_symbols):
            site_index.append(i)
            zs.append(z)
            occupancies.append(occupancy)
            if z == DUMMY_Z:
                dummy.setdefault(i, symbol)
    return (
        len(structure),
        np.asarray(site_index, dtype=np.int64),
        np.asarray(zs, dtype=np.int64),
        np.asarray(occupancies, dtype=np.float64),
        dummy,
    )
