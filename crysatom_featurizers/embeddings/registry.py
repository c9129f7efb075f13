"""One registry of element embeddings: :func:`available`, :func:`load`, :func:`register`.

Names are case-insensitive. Built-in names:

==========  =================  ===========  ================================================
name        dims               default dim  origin
==========  =================  ===========  ================================================
crysatom    50, 100, 200       200          this repository's ``training/`` (files in data/)
atom2vec    50, 100, 200       200          this repository's ``training/`` (files in data/)
uae         256, 64            256          this repository's ``training/``, from labels
skipatom    200                200          elementembeddings (MIT)
mat2vec     200                200          elementembeddings (MIT)
matscholar  200                200          elementembeddings (MIT)
megnet16    16                 16           elementembeddings (MIT)
magpie      22                 22           elementembeddings (MIT), raw property values
chgnet      64                 64           elementembeddings (MIT), CHGNet node features
mace_mp0    128                128          elementembeddings (MIT), MACE-MP-0 invariants
orb_v2      256                256          elementembeddings (MIT), ORB-v2 node features
sevennet    128                128          elementembeddings (MIT), SevenNet-0 scalars
crystallm   512                512          elementembeddings (MIT), CrystaLLM token vectors
chemeleon   512                512          elementembeddings (MIT), Chemeleon node features
matscibert  768                768          elementembeddings (MIT), MatSciBERT tokens
cgcnn       92                 92           CGCNN one-hot bins, rebuilt from pymatgen data
onehot      103                103          one-hot of the element, H..Lr
random      any                200          N(0, 1), seeded (``seed=0``), H..Fm
==========  =================  ===========  ================================================

For ``crysatom``, ``atom2vec`` and ``uae`` only the dimensions whose vector files exist
are listed by :func:`available`. Its ``leak`` column says, per benchmark property, whether the
table's training saw that property's labels (``seen``), labels of overlapping compounds or a
close quantity (``related``), or neither (``unseen``); see
:data:`crysatom_featurizers.embeddings.builtin.LEAK_CLASSES`.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import builtin
from .cgcnn import CGCNN_DIM, cgcnn_embedding
from .core import ElementEmbedding

__all__ = ["available", "load", "register", "unregister"]

Factory = Callable[..., ElementEmbedding]


@dataclass
class _Entry:
    name: str
    factory: Factory
    dims: tuple[int, ...] | None  # None: any positive dimension
    default_dim: int | None
    info: dict[str, Any] = field(default_factory=dict)
    dims_getter: Callable[[], list[int]] | None = None  # for file-backed embeddings
    accepts_dim: bool = True

    def current_dims(self) -> list[int] | None:
        if self.dims_getter is not None:
            return self.dims_getter()
        return None if self.dims is None else list(self.dims)


_REGISTRY: dict[str, _Entry] = {}
_CACHE: dict[tuple, ElementEmbedding] = {}
_LOCK = threading.RLock()
_BUILTINS_READY = False

_INFO_COLUMNS = ("source", "citation", "license", "corpus", "description", "leak")


def _normalize(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"embedding name must be a non-empty string, got {name!r}")
    return name.strip().lower()


def _add(entry: _Entry) -> None:
    _REGISTRY[entry.name] = entry
    for key in [k for k in _CACHE if k[0] == entry.name]:
        del _CACHE[key]


def _register_builtins() -> None:
    global _BUILTINS_READY
    if _BUILTINS_READY:
        return
    for name, info in builtin.TRAINED_EMBEDDINGS.items():
        _add(
            _Entry(
                name=name,
                factory=(lambda dim, _name=name: builtin.trained_embedding(_name, dim)),
                dims=tuple(info["dims"]),
                default_dim=info["default_dim"],
                info={
                    "source": f"this repository: {info['command']} "
                    f"-> crysatom_featurizers/embeddings/data/{builtin._file_stem(name)}_<dim>.json",
                    "citation": info["citation"],
                    "license": "MIT (this package)",
                    "corpus": "see training/ configs and the file's metadata",
                    "description": info["description"],
                    "leak": builtin.leak_summary(info.get("leak", "label-free")),
                },
                dims_getter=(lambda _name=name: builtin.trained_dims(_name)),
            )
        )
    for name, info in builtin.ELEMENTEMBEDDINGS_SOURCES.items():
        _add(
            _Entry(
                name=name,
                factory=(lambda dim, _name=name: builtin.elementembeddings_embedding(_name)),
                dims=(info["dim"],),
                default_dim=info["dim"],
                info={
                    "source": f"elementembeddings package, {info['file']}",
                    "citation": info["citation"],
                    "license": f"MIT (elementembeddings); original: {info['original_license']}",
                    "corpus": info["corpus"],
                    "description": info["description"],
                    "leak": builtin.leak_summary(info["leak"]),
                },
            )
        )
    _add(
        _Entry(
            name="cgcnn",
            factory=lambda dim: cgcnn_embedding(),
            dims=(CGCNN_DIM,),
            default_dim=CGCNN_DIM,
            info={
                "source": "rebuilt from pymatgen element data",
                "citation": "T. Xie and J. C. Grossman, Phys. Rev. Lett. 120, 145301 (2018), "
                "doi:10.1103/PhysRevLett.120.145301",
                "license": "MIT (this package)",
                "corpus": "tabulated element properties (no training)",
                "description": "CGCNN one-hot encoding of 9 binned element properties, H..Fm",
                "leak": builtin.leak_summary("label-free"),
            },
        )
    )
    _add(
        _Entry(
            name="onehot",
            factory=lambda dim: builtin.onehot_embedding(),
            dims=(builtin.ONEHOT_MAX_Z,),
            default_dim=builtin.ONEHOT_MAX_Z,
            info={
                "source": "generated (identity matrix)",
                "citation": None,
                "license": "MIT (this package)",
                "corpus": None,
                "description": "one-hot of the element, H..Lr",
                "leak": builtin.leak_summary("label-free"),
            },
        )
    )
    _add(
        _Entry(
            name="random",
            factory=lambda dim, seed=0: builtin.random_embedding(dim, seed=seed),
            dims=None,
            default_dim=200,
            info={
                "source": "generated: numpy PCG64 standard normal (seed=0 unless given)",
                "citation": "CrysAtom random baseline: arXiv:2409.04737 (footnote 5)",
                "license": "MIT (this package)",
                "corpus": None,
                "description": "N(0, 1) random vectors, any dimension, H..Fm; load(..., seed=)",
                "leak": builtin.leak_summary("label-free"),
            },
        )
    )
    _BUILTINS_READY = True


def available() -> pd.DataFrame:
    """Every registered embedding, its dimensions and provenance.

    Returns
    -------
    pandas.DataFrame
        One row per name with columns ``name``, ``dims`` (list of int; ``None``
        when any dimension works), ``default_dim``, ``source``, ``citation``,
        ``license``, ``corpus``, ``description`` and ``leak`` (the leak class and its
        cells on the five benchmark properties). For ``crysatom`` and
        ``atom2vec``, ``dims`` lists only the generated vector files (possibly
        none).
    """
    with _LOCK:
        _register_builtins()
        rows = []
        for entry in _REGISTRY.values():
            dims = entry.current_dims()
            rows.append(
                {
                    "name": entry.name,
                    "dims": dims,
                    "default_dim": _default_dim(entry, dims),
                    **{key: entry.info.get(key) for key in _INFO_COLUMNS},
                }
            )
    return pd.DataFrame(rows, columns=["name", "dims", "default_dim", *_INFO_COLUMNS])


def _default_dim(entry: _Entry, dims: list[int] | None) -> int | None:
    if entry.dims_getter is not None and dims is not None and entry.default_dim not in dims:
        # trained embeddings: fall back to the largest generated dimension
        return max(dims) if dims else entry.default_dim
    return entry.default_dim


def _hashable(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        raise ValueError(
            f"embedding parameters must be hashable (they key the cache), got {value!r}"
        ) from None
    return value


def load(name: str, dim: int | None = None, **kwargs: Any) -> ElementEmbedding:
    """Load a registered embedding (cached: same arguments, same object).

    Parameters
    ----------
    name : str
        A name listed by :func:`available` (case-insensitive).
    dim : int, optional
        Vector dimension; defaults to the embedding's ``default_dim``.
    **kwargs
        Extra parameters for the embedding's factory, e.g. ``seed`` for
        ``random``: ``load("random", dim=50, seed=1)``.

    Returns
    -------
    ElementEmbedding
        Of dimension ``dim``, except for a trained embedding whose method's
        rank capped it lower (Atom2Vec: at most about as many dimensions as
        elements); its ``metadata["requested_dim"]`` then equals ``dim``.

    Raises
    ------
    ValueError
        If the name is unknown (the message lists the available names), the
        dimension is not supported (the message lists the supported ones), or
        a parameter is not accepted.
    EmbeddingNotAvailableError
        (a ``FileNotFoundError``) If the vector file of a trained embedding
        (``crysatom``, ``atom2vec``) has not been generated.
    EmbeddingFileError
        If a vector file is invalid.

    Examples
    --------
    >>> load("cgcnn").dim
    92
    >>> load("random", dim=8, seed=3).vector("Fe").shape
    (8,)
    """
    key_name = _normalize(name)
    with _LOCK:
        _register_builtins()
        entry = _REGISTRY.get(key_name)
        if entry is None:
            raise ValueError(
                f"unknown embedding {name!r}; available: {', '.join(sorted(_REGISTRY))}"
            )
        dims = entry.current_dims()
        if dim is None:
            dim = _default_dim(entry, dims)
        elif isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        else:
            dim = int(dim)
        nominal = entry.dims
        if nominal is not None and dim not in nominal:
            raise ValueError(
                f"embedding {entry.name!r} does not come in dimension {dim}; "
                f"supported dims: {list(nominal)}"
                + (f" (generated: {dims})" if entry.dims_getter is not None else "")
            )
        if kwargs:
            _check_kwargs(entry, kwargs)
        key = (entry.name, dim, _parameters_key(entry.factory, dim, kwargs))
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        embedding = entry.factory(dim, **kwargs)
        if not isinstance(embedding, ElementEmbedding):
            raise TypeError(
                f"the factory of embedding {entry.name!r} returned "
                f"{type(embedding).__name__}, expected ElementEmbedding"
            )
        if dim is not None and embedding.dim != dim and not _capped(embedding, dim):
            raise ValueError(
                f"the factory of embedding {entry.name!r} returned dimension {embedding.dim}, "
                f"expected {dim}"
            )
        _CACHE[key] = embedding
        return embedding


def _capped(embedding: ElementEmbedding, dim: int) -> bool:
    """True when the embedding was made for ``dim`` but its method's rank capped it lower."""
    meta = embedding.metadata
    return meta.get("requested_dim") == dim and embedding.dim < dim


def _parameters_key(factory: Factory, dim: int | None, kwargs: Mapping[str, Any]) -> tuple:
    """Cache key of the factory parameters, with defaults filled in (seed=0 == no seed)."""
    arguments = dict(kwargs)
    try:
        bound = inspect.signature(factory).bind(dim, **kwargs)
    except (TypeError, ValueError):
        pass
    else:
        bound.apply_defaults()
        names = list(bound.signature.parameters)
        arguments = {
            k: v for k, v in bound.arguments.items() if k != names[0] and not k.startswith("_")
        }
        for k, v in list(arguments.items()):
            if bound.signature.parameters[k].kind is inspect.Parameter.VAR_KEYWORD:
                del arguments[k]
                arguments.update(v)
    return tuple(sorted((k, _hashable(v)) for k, v in arguments.items()))


def _check_kwargs(entry: _Entry, kwargs: Mapping[str, Any]) -> None:
    try:
        parameters = inspect.signature(entry.factory).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = [n for n in list(parameters)[1:] if not n.startswith("_")]
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        raise ValueError(
            f"embedding {entry.name!r} does not take parameters {unknown}; "
            f"it accepts: {accepted or 'none'}"
        )


def register(
    name: str,
    embedding_or_factory: ElementEmbedding | Factory,
    *,
    dims: Iterable[int] | None = None,
    overwrite: bool = False,
    default_dim: int | None = None,
    info: Mapping[str, Any] | None = None,
) -> None:
    """Add an embedding to the registry, so that ``load(name)`` returns it.

    Parameters
    ----------
    name : str
        Registry name (case-insensitive, stored lower-case).
    embedding_or_factory : ElementEmbedding or callable
        Either a ready embedding (registered under ``name``; if its own name
        differs, a renamed copy is stored so that feature labels use ``name``),
        or a factory called as ``factory(dim, **kwargs)`` that returns an
        :class:`ElementEmbedding` of dimension ``dim``.
    dims : iterable of int, optional
        Supported dimensions. For an embedding this defaults to (and must
        equal) ``[embedding.dim]``; for a factory ``None`` means any positive
        dimension.
    overwrite : bool, default False
        Replace an existing entry of the same name (built-ins included); its
        cached embeddings are dropped.
    default_dim : int, optional
        Dimension used by ``load(name)`` without ``dim``; defaults to the
        first of ``dims``. A factory with neither is called with ``dim=None``.
    info : mapping, optional
        Provenance shown by :func:`available` (``source``, ``citation``,
        ``license``, ``corpus``, ``description``); taken from the embedding's
        metadata when registering an embedding.

    Raises
    ------
    ValueError
        If the name is taken and ``overwrite`` is False, or ``dims`` are invalid.
    TypeError
        If ``embedding_or_factory`` is neither an embedding nor callable.
    """
    key_name = _normalize(name)
    dims_tuple = None if dims is None else tuple(int(d) for d in dims)
    if dims_tuple is not None and (not dims_tuple or any(d < 1 for d in dims_tuple)):
        raise ValueError(f"dims must be positive integers, got {dims!r}")
    with _LOCK:
        _register_builtins()
        if key_name in _REGISTRY and not overwrite:
            raise ValueError(
                f"an embedding named {key_name!r} is already registered; "
                "pass overwrite=True to replace it"
            )
        if isinstance(embedding_or_factory, ElementEmbedding):
            embedding = embedding_or_factory
            if embedding.name != key_name:
                embedding = embedding.renamed(key_name)
            if dims_tuple is not None and dims_tuple != (embedding.dim,):
                raise ValueError(
                    f"dims {list(dims_tuple)} do not match the embedding's dimension "
                    f"{embedding.dim}"
                )
            metadata = embedding.metadata
            entry_info = {key: metadata.get(key) for key in _INFO_COLUMNS}
            entry_info.update(info or {})
            entry = _Entry(
                name=key_name,
                factory=lambda dim, _embedding=embedding: _embedding,
                dims=(embedding.dim,),
                default_dim=embedding.dim,
                info=entry_info,
            )
        elif callable(embedding_or_factory):
            if default_dim is None and dims_tuple:
                default_dim = dims_tuple[0]
            if default_dim is not None and dims_tuple and default_dim not in dims_tuple:
                raise ValueError(f"default_dim {default_dim} is not one of dims {dims_tuple}")
            entry = _Entry(
                name=key_name,
                factory=embedding_or_factory,
                dims=dims_tuple,
                default_dim=default_dim,
                info=dict(info or {}),
            )
        else:
            raise TypeError(
                "register expects an ElementEmbedding or a factory callable, got "
                f"{type(embedding_or_factory).__name__}"
            )
        _add(entry)


def unregister(name: str) -> None:
    """Remove a registered embedding (and its cached instances).

    Raises
    ------
    ValueError
        If no embedding of that name is registered.
    """
    key_name = _normalize(name)
    with _LOCK:
        _register_builtins()
        if key_name not in _REGISTRY:
            raise ValueError(f"no embedding named {name!r} is registered")
        del _REGISTRY[key_name]
        for key in [k for k in _CACHE if k[0] == key_name]:
            del _CACHE[key]
