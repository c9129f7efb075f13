"""CGCNN's 92-dimensional one-hot encoding of binned element properties.

Xie & Grossman (Phys. Rev. Lett. 120, 145301, 2018, doi:10.1103/PhysRevLett.120.145301)
describe each element by nine properties, each one-hot encoded in a block of
categories or bins, and concatenate the blocks into a 92-dimensional vector.
This module rebuilds that encoding from pymatgen's element data, for
Z = 1-100 (H-Fm), the range of the original ``atom_init.json``.

Blocks (offset = first column of the block; 92 columns in total)
-----------------------------------------------------------------
=====================  ======  =====  ===============================================
property               offset  size   categories / bin edges
=====================  ======  =====  ===============================================
group                  0       19     column 0: f-block elements (La-Yb, Ac-Fm);
                                      column g: group g = 1..18
period                 19      7      periods 1..7
electronegativity      26      10     Pauling; edges 0.5, 0.85, ..., 4.0 (width 0.35)
covalent radius        36      10     pm; edges 25, 47.5, ..., 250 (width 22.5)
valence electrons      46      12     1..12
first ionization       58      10     ln(E / eV); edges 1.3, 1.5, ..., 3.3 (width 0.2)
energy                                (E = 3.7 - 27.1 eV)
electron affinity      68      10     eV; edges -3.0, -2.33, ..., 3.7 (width 0.67)
block                  78      4      s, p, d, f
atomic volume          82      10     ln(V / (cm^3/mol)); edges 1.5, 1.78, ..., 4.3
                                      (width 0.28; V = 4.5 - 74 cm^3/mol)
=====================  ======  =====  ===============================================

Binning rule: bin ``k`` holds ``edges[k] <= x < edges[k + 1]``; values below the
first edge go to the first bin and values at or above the last edge to the last
bin, so every element with a value gets exactly one 1 in that block. An element
for which pymatgen has no value of a property gets an all-zero block for it.

Data (pymatgen ``Element``)
---------------------------
* group: ``Element.group``, except that f-block elements go to column 0;
* period: ``Element.row``;
* electronegativity: ``Element.X`` (missing for He, Ne, Ar -> zero block);
* covalent radius: ``pymatgen.analysis.molecule_structure_comparator.CovalentRadius``
  (Cordero et al., Dalton Trans. 2008), H-Cm (Bk-Fm -> zero block);
* valence electrons: the group number for groups 1-12, group - 10 for groups
  13-18 (He: 2), and for f-block elements the electrons of the outermost s
  shell (2 for all of them);
* first ionization energy: ``Element.ionization_energies[0]``;
* electron affinity: ``Element.electron_affinity`` (negative values are kept);
* block: ``Element.block``, except He, which is put in the s block (1s^2);
* atomic volume: ``Element.molar_volume`` (At, Fr, Fm -> zero block).

Differences from the original ``atom_init.json``
------------------------------------------------
The layout is the original's: block order and sizes, categories, bin edges, log
scales, and column 0 of the group block for f-block elements (La-Yb, Ac-Fm;
Lu is group 3). Note that the period block has 7 columns and the group block
19, which is how the original reaches 92 columns. The element data are
pymatgen's, so some elements fall in neighbouring bins. Compared column by
column with the original for H, He, Li, Fe, La, Lu, Ac, U and Fm:

* Li is identical; Fe, La and Ac differ only in the covalent-radius bin.
* Covalent radii are Cordero's (pymatgen), whereas the original used another
  table: Fe (142 pm here), Lu, Ac and U land one bin higher, La (207 pm) two.
* H is in the s block here; the original puts it in the p block.
* Electron affinities: pymatgen lists negative affinities (He -0.52 eV, Ne
  -1.22 eV, ...) and values for most actinides, which are binned; the original
  leaves the block empty for He, U and Fm, for example.
* Electronegativity of Lu (1.27) and U (1.38) falls one bin away from the
  original's.
* Atomic volumes of gaseous elements use pymatgen's molar volumes (H 11.42,
  He 21.0 cm^3/mol), which fall in lower bins than the original's.
* f-block valence electrons are 2 (the outer s shell) as in the original.
* Missing data (all-zero blocks): electronegativity of He, Ne, Ar; atomic
  volume of At, Fr, Fm; covalent radius of Bk, Cf, Es, Fm (the original has
  other gaps: for Fm it lacks electronegativity, electron affinity and volume,
  but has a covalent radius).
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import Any

import numpy as np

from .core import ELEMENT_SYMBOLS, ElementEmbedding

__all__ = ["CGCNN_DIM", "CGCNN_MAX_Z", "cgcnn_bins", "cgcnn_embedding", "cgcnn_feature_table"]

CGCNN_DIM = 92
CGCNN_MAX_Z = 100  # H..Fm, as in the original atom_init.json


def _edges(start: float, stop: float, n_bins: int) -> list[float]:
    # Rounded so that edges equal their decimal values (1.2, not 1.1999999999999997):
    # tabulated data sitting exactly on an edge then falls in the upper bin.
    return [round(float(v), 10) for v in np.linspace(start, stop, n_bins + 1)]


# (property, kind, categories-or-edges, unit/scale note)
_BLOCKS: tuple[dict[str, Any], ...] = (
    {
        "property": "group",
        "kind": "category",
        "categories": ["f-block", *[str(g) for g in range(1, 19)]],
        "unit": None,
        "scale": None,
        "source": "pymatgen Element.group; f-block elements in column 0",
    },
    {
        "property": "period",
        "kind": "category",
        "categories": [str(p) for p in range(1, 8)],
        "unit": None,
        "scale": None,
        "source": "pymatgen Element.row",
    },
    {
        "property": "electronegativity",
        "kind": "bins",
        "edges": _edges(0.5, 4.0, 10),
        "unit": "Pauling",
        "scale": "linear",
        "source": "pymatgen Element.X",
    },
    {
        "property": "covalent_radius",
        "kind": "bins",
        "edges": _edges(25.0, 250.0, 10),
        "unit": "pm",
        "scale": "linear",
        "source": "pymatgen CovalentRadius (Cordero et al., Dalton Trans. 2008, 2832)",
    },
    {
        "property": "valence_electrons",
        "kind": "category",
        "categories": [str(n) for n in range(1, 13)],
        "unit": None,
        "scale": None,
        "source": "group rule: group (1-12), group - 10 (13-18), outer s electrons (f-block)",
    },
    {
        "property": "first_ionization_energy",
        "kind": "bins",
        "edges": _edges(1.3, 3.3, 10),
        "unit": "ln(eV)",
        "scale": "natural log of the energy in eV",
        "source": "pymatgen Element.ionization_energies[0]",
    },
    {
        "property": "electron_affinity",
        "kind": "bins",
        "edges": _edges(-3.0, 3.7, 10),
        "unit": "eV",
        "scale": "linear",
        "source": "pymatgen Element.electron_affinity",
    },
    {
        "property": "block",
        "kind": "category",
        "categories": ["s", "p", "d", "f"],
        "unit": None,
        "scale": None,
        "source": "pymatgen Element.block; He in the s block",
    },
    {
        "property": "atomic_volume",
        "kind": "bins",
        "edges": _edges(1.5, 4.3, 10),
        "unit": "ln(cm^3/mol)",
        "scale": "natural log of the molar volume in cm^3/mol",
        "source": "pymatgen Element.molar_volume",
    },
)


def cgcnn_bins() -> list[dict[str, Any]]:
    """Description of the nine one-hot blocks (also stored in ``metadata["bins"]``).

    Returns
    -------
    list of dict
        One dict per block with ``property``, ``offset``, ``size``, ``kind``
        (``"category"`` or ``"bins"``), ``categories`` or ``edges``, ``unit``,
        ``scale`` and ``source``.
    """
    blocks = []
    offset = 0
    for block in _BLOCKS:
        size = len(block["categories"]) if block["kind"] == "category" else len(block["edges"]) - 1
        blocks.append({**block, "offset": offset, "size": size})
        offset += size
    assert offset == CGCNN_DIM
    return [dict(b) for b in blocks]


def cgcnn_feature_names() -> list[str]:
    """Human-readable names of the 92 columns, e.g. ``"group=8"``, ``"electronegativity[1.55,1.9)"``."""
    names = []
    for block in cgcnn_bins():
        prop = block["property"]
        if block["kind"] == "category":
            names.extend(f"{prop}={c}" for c in block["categories"])
        else:
            edges = block["edges"]
            names.extend(f"{prop}[{edges[k]:g},{edges[k + 1]:g})" for k in range(block["size"]))
    return names


def _bin_index(value: float, edges: list[float]) -> int:
    index = int(np.searchsorted(np.asarray(edges[1:-1]), value, side="right"))
    return min(max(index, 0), len(edges) - 2)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _element_properties(symbol: str) -> dict[str, Any]:
    """Raw property values of one element (None where pymatgen has no value)."""
    from pymatgen.analysis.molecule_structure_comparator import CovalentRadius
    from pymatgen.core.periodic_table import Element

    element = Element(symbol)

    def attempt(getter):
        try:
            return getter()
        except (AttributeError, KeyError, ValueError, TypeError, IndexError):
            return None

    block = attempt(lambda: element.block)
    if symbol == "He":
        block = "s"  # 1s^2; pymatgen files He under p with the other noble gases
    group = attempt(lambda: element.group)
    if block == "f":
        group_category = "f-block"
    else:
        group_category = str(group) if group else None

    if block == "f":
        structure = attempt(lambda: element.full_electronic_structure) or []
        s_shells = [(n, occ) for n, orbital, occ in structure if orbital == "s"]
        valence = int(max(s_shells)[1]) if s_shells else None
    elif symbol == "He":
        valence = 2
    elif group is None:
        valence = None
    else:
        valence = group if group <= 12 else group - 10

    radius = CovalentRadius.radius.get(symbol)
    ionization = attempt(lambda: element.ionization_energies[0])
    volume = attempt(lambda: element.molar_volume)
    ionization = _finite(ionization)
    volume = _finite(volume)
    return {
        "group": group_category,
        "period": str(attempt(lambda: element.row)),
        "electronegativity": _finite(attempt(lambda: element.X)),
        "covalent_radius": None if radius is None else round(float(radius) * 100.0, 6),
        "valence_electrons": None if valence is None else str(valence),
        "first_ionization_energy": math.log(ionization) if ionization and ionization > 0 else None,
        "electron_affinity": _finite(attempt(lambda: element.electron_affinity)),
        "block": block,
        "atomic_volume": math.log(volume) if volume and volume > 0 else None,
    }


@lru_cache(maxsize=1)
def _cgcnn_matrix() -> tuple[tuple[str, ...], np.ndarray, dict[str, list[str]]]:
    """Vectors of H..Fm and, per element, the properties it lacks."""
    blocks = cgcnn_bins()
    symbols = ELEMENT_SYMBOLS[:CGCNN_MAX_Z]
    matrix = np.zeros((len(symbols), CGCNN_DIM), dtype=np.float32)
    missing: dict[str, list[str]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns for every missing property value
        for row, symbol in enumerate(symbols):
            values = _element_properties(symbol)
            for block in blocks:
                value = values[block["property"]]
                if value is None:
                    missing.setdefault(symbol, []).append(block["property"])
                    continue
                if block["kind"] == "category":
                    if value not in block["categories"]:
                        missing.setdefault(symbol, []).append(block["property"])
                        continue
                    index = block["categories"].index(value)
                else:
                    index = _bin_index(value, block["edges"])
                matrix[row, block["offset"] + index] = 1.0
    matrix.setflags(write=False)
    return tuple(symbols), matrix, missing


def cgcnn_embedding() -> ElementEmbedding:
    """The ``cgcnn`` embedding: 92-dim binned one-hot vectors for H..Fm (Z = 1-100).

    ``metadata["bins"]`` documents every block (see the module docstring),
    ``metadata["feature_names"]`` names the 92 columns and
    ``metadata["missing_properties"]`` lists, per element, the properties whose
    block is all zero for lack of data.
    """
    symbols, matrix, missing = _cgcnn_matrix()
    import pymatgen.core

    metadata = {
        "source": "rebuilt from pymatgen element data "
        f"(pymatgen {getattr(pymatgen.core, '__version__', 'unknown')})",
        "citation": "T. Xie and J. C. Grossman, Phys. Rev. Lett. 120, 145301 (2018), "
        "doi:10.1103/PhysRevLett.120.145301",
        "corpus": "tabulated element properties (no training)",
        "corpus_size": None,
        "license": "MIT (this package); element data from pymatgen (MIT)",
        "description": "CGCNN one-hot encoding of nine binned element properties",
        "bins": cgcnn_bins(),
        "feature_names": cgcnn_feature_names(),
        "missing_properties": missing,
    }
    return ElementEmbedding("cgcnn", list(symbols), matrix, metadata)


def cgcnn_feature_table(max_z: int = 118) -> np.ndarray:
    """CGCNN input features indexed by atomic number.

    Parameters
    ----------
    max_z : int, default 118
        Largest atomic number with a row.

    Returns
    -------
    numpy.ndarray
        New float32 array of shape ``(max_z + 1, 92)``; row ``Z`` is the cgcnn
        vector of element ``Z`` (entries 0 or 1). Row 0 and the rows of
        elements beyond Fm (Z > 100) are all zero; use
        ``load("cgcnn").lookup_table(max_z)[1]`` to tell covered rows apart.
    """
    max_z = int(max_z)
    if max_z < 1:
        raise ValueError(f"max_z must be >= 1, got {max_z}")
    _, matrix, _ = _cgcnn_matrix()
    table = np.zeros((max_z + 1, CGCNN_DIM), dtype=np.float32)
    n = min(max_z, matrix.shape[0])
    table[1 : n + 1] = matrix[:n]
    return table
