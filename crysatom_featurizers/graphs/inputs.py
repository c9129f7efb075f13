"""Input checks shared by everything that takes crystal structures (no torch)."""

from __future__ import annotations

from typing import Any

__all__ = ["check_structure", "type_name"]


def type_name(obj: Any) -> str:
    """``module.QualName`` of the type of ``obj`` (just the name for builtins)."""
    kind = type(obj)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def check_structure(structure: Any, index: Any = None) -> None:
    """Raise unless ``structure`` is a periodic pymatgen Structure (or IStructure).

    Parameters
    ----------
    structure : object
        What to check.
    index : object, optional
        Its position or label in the caller's input, named in the message.

    Raises
    ------
    TypeError
        For anything else, a :class:`~pymatgen.core.Molecule` included: its sites have no
        lattice, so they are not crystal sites.
    """
    from pymatgen.core import IStructure, Molecule

    if isinstance(structure, IStructure):
        return
    where = "" if index is None else f" at index {index!r}"
    message = f"expected a pymatgen Structure{where}, got {type_name(structure)}"
    if isinstance(structure, Molecule):
        message += (
            " (a Molecule has no lattice; for its composition use "
            "ElementEmbeddingCompositionFeaturizer)"
        )
    raise TypeError(message)
