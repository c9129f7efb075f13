"""One resolver from an embedding *spec* to an :class:`ElementEmbedding`.

A spec is what users pass wherever the package asks "which element vectors":

* an :class:`ElementEmbedding` (or any object with ``lookup_table()``), used as is;
* a registry name, ``"crysatom"``, optionally with a dimension, ``"crysatom:100"``;
* the path of a vector file (``.json``, ``.json.gz``, ``.csv``, ``.csv.gz``).

Featurizers, estimators, ``nn`` layers, plots, the command line and ``training/`` all call
:func:`resolve`, so they accept the same specs and fail with the same messages.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .core import ElementEmbedding

__all__ = ["is_file_spec", "parse_spec", "resolve", "spec_label"]

_FILE_SUFFIXES = (".json", ".json.gz", ".csv", ".csv.gz")


def is_file_spec(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` names a vector file rather than a registry entry."""
    if isinstance(spec, os.PathLike):
        return True
    text = str(spec)
    return text.lower().endswith(_FILE_SUFFIXES) or "/" in text or os.sep in text


def parse_spec(spec: str, *, param: str = "embedding") -> tuple[str, int | None]:
    """Split ``"name:dim"`` into ``(name, dim)``; ``dim`` is None without a colon.

    Raises
    ------
    ValueError
        If the name is empty or the part after ``:`` is not a positive integer.
    """
    name, sep, dim_text = str(spec).partition(":")
    name = name.strip()
    if not name:
        raise ValueError(f"{param}={spec!r}: empty embedding name")
    if not sep:
        return name, None
    try:
        dim = int(dim_text)
    except ValueError:
        dim = 0
    if dim < 1:
        raise ValueError(
            f"{param}={spec!r}: the part after ':' must be a positive integer dimension, "
            "as in 'crysatom:100'"
        )
    return name, dim


def spec_label(spec: Any) -> str:
    """A short label for tables and file names.

    ``"crysatom:200"`` -> ``"crysatom_200"``, ``"crysatom"`` -> ``"crysatom"``, a file path ->
    its name without suffixes, an embedding object -> its ``name``.
    """
    if isinstance(spec, (str, os.PathLike)):
        if is_file_spec(spec):
            return Path(spec).name.split(".")[0]
        name, dim = parse_spec(str(spec))
        return f"{name}_{dim}" if dim is not None else name
    return str(getattr(spec, "name", "custom"))


def resolve(
    spec: Any,
    dim: int | None = None,
    *,
    param: str = "embedding",
    base_dir: str | os.PathLike | None = None,
) -> ElementEmbedding:
    """The :class:`ElementEmbedding` a spec names.

    Parameters
    ----------
    spec : ElementEmbedding, str or path-like
        An embedding object, a registry name (``"skipatom"``), ``"name:dim"``
        (``"crysatom:100"``) or the path of a vector file.
    dim : int, optional
        Vector dimension for a registry name. Must agree with a ``":dim"`` suffix or with
        the dimension of a given embedding object or file.
    param : str, default "embedding"
        The caller's parameter name, used in error messages.
    base_dir : path-like, optional
        Folder that a relative file path is taken from (default: the working directory).

    Returns
    -------
    ElementEmbedding

    Raises
    ------
    TypeError
        If ``spec`` is none of the above.
    ValueError
        For an unknown name (the message lists the available ones), a malformed ``":dim"``,
        or a dimension that contradicts the embedding.
    FileNotFoundError
        For a vector file that does not exist, or a trained embedding whose file has not
        been generated (:class:`~crysatom_featurizers.embeddings.EmbeddingNotAvailableError`).
    EmbeddingFileError
        For a corrupt vector file.

    Examples
    --------
    >>> resolve("cgcnn").dim
    92
    >>> resolve("random:8").dim
    8
    """
    if hasattr(spec, "lookup_table"):
        embedding = spec
    elif isinstance(spec, (str, os.PathLike)):
        if is_file_spec(spec):
            embedding = _from_file(Path(spec), base_dir)
        else:
            embedding = _from_registry(str(spec), dim, param)
    else:
        raise TypeError(
            f"{param} must be a registry name such as 'crysatom' or 'cgcnn', a 'name:dim' "
            "string such as 'crysatom:100', the path of a vector file, or an ElementEmbedding; "
            f"got {type(spec).__name__}"
        )
    if dim is not None and int(dim) != int(embedding.dim) and not _rank_capped(embedding, dim):
        raise ValueError(
            f"dim={dim} contradicts {param} {getattr(embedding, 'name', spec)!r} of dim "
            f"{embedding.dim}; pass dim=None"
        )
    return embedding


def _rank_capped(embedding: Any, dim: int) -> bool:
    """A trained embedding asked for ``dim`` whose method capped it lower (Atom2Vec)."""
    metadata = getattr(embedding, "metadata", None) or {}
    return metadata.get("requested_dim") == int(dim)


def _from_registry(spec: str, dim: int | None, param: str) -> ElementEmbedding:
    from .registry import available, load

    name, spec_dim = parse_spec(spec, param=param)
    if spec_dim is not None and dim is not None and int(dim) != spec_dim:
        raise ValueError(f"{param}={spec!r} contradicts dim={dim}; give the dimension once")
    names = [str(n) for n in available()["name"]]
    if name.lower() not in {n.lower() for n in names}:
        raise ValueError(
            f"unknown {param} {spec!r}; available embeddings: {', '.join(names)} "
            "(or pass an ElementEmbedding or the path of a vector file)"
        )
    return load(name, dim=spec_dim if spec_dim is not None else dim)


def _from_file(path: Path, base_dir: str | os.PathLike | None) -> ElementEmbedding:
    path = path.expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if not path.exists():
        raise FileNotFoundError(f"vector file {path} does not exist")
    if path.name.lower().endswith((".csv", ".csv.gz")):
        return ElementEmbedding.from_csv(path)
    return ElementEmbedding.from_json(path)
