"""The safe model file of the graph estimators: a safetensors file that loading never unpickles.

Layout of ``model.safetensors``:

* tensors ``model/<name>``: the network's ``state_dict`` (weights, batch-norm statistics, the
  element table and its coverage mask);
* tensors ``array/<key>``: the numeric arrays among the parameters and fitted attributes
  (target mean and scale, validation indices, ...);
* the safetensors header's string metadata: ``format``, ``format_version``,
  ``package_version``, ``estimator`` (the class name, from an allow-list), ``params``,
  ``fitted`` and ``network`` (JSON; arrays referenced by key), and ``checksum``, the SHA-256 of
  all of it (metadata and every tensor's name, dtype, shape and bytes).

Values are plain data: numbers, strings, lists, string-keyed dicts, arrays, a table of
numbers (``history_``) and an element embedding (``embedding=ElementEmbedding(...)``).
Anything else is refused at ``save`` with the name of the attribute, so a file never holds
something it cannot give back exactly. Loading reads JSON and tensors and rebuilds the network
from its configuration: no code from the file runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crysatom_featurizers.io import atomic_write

FORMAT = "crysatom-featurizers model"
FORMAT_VERSION = 1
#: File name ending of the safe format.
SAFE_SUFFIX = ".safetensors"
#: A model file's JSON header is a few kB; a longer one is not read when checking a path.
_MAX_HEADER_BYTES = 64 * 2**20
#: Fitted attributes that are rebuilt or only needed during ``fit``.
_NOT_SAVED = ("model_", "_label_lookup")
#: What a fitted attribute's name looks like (``history_``, ``_y_ndim``).
_FITTED_NAME = re.compile(r"_?[a-z][a-z0-9_]*_|_[a-z][a-z0-9_]*")


class ModelFileError(ValueError):
    """A model file that is not a valid safe model file (the message names the file)."""


def _safetensors() -> Any:
    try:
        import safetensors.torch
    except ImportError:
        raise ImportError(
            "model files need the safetensors package: pip install safetensors (it comes with "
            "the [gnn] extra)"
        ) from None
    return safetensors


def _estimator_classes() -> dict[str, type]:
    from crysatom_featurizers.estimators import (
        ALIGNNClassifier,
        ALIGNNRegressor,
        CGCNNClassifier,
        CGCNNRegressor,
    )

    classes = (CGCNNRegressor, CGCNNClassifier, ALIGNNRegressor, ALIGNNClassifier)
    return {cls.__name__: cls for cls in classes}


# ---- plain data <-> JSON + arrays ------------------------------------------------------------

_JSON_SCALARS = (str, int, float, bool, type(None))


class _Encoder:
    """Turns parameter and attribute values into JSON, collecting numeric arrays apart."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, key: str, value: np.ndarray) -> dict[str, str]:
        self.arrays[key] = np.array(value, order="C")  # 0-d arrays keep their shape
        return {"__array__": key}

    def __call__(self, value: Any, where: str) -> Any:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            value = float(value)
            return value if math.isfinite(value) else {"__float__": repr(value)}
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if isinstance(value, (list, tuple)):
            items = [self(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return items if isinstance(value, list) else {"__tuple__": items}
        if isinstance(value, dict):
            bad = [k for k in value if not isinstance(k, str)]
            if bad:
                # e.g. class_weight={0: 1.0, 1: 2.0}: keys kept with their types
                return {
                    "__pairs__": [
                        [self(k, where), self(v, f"{where}[{k!r}]")] for k, v in value.items()
                    ]
                }
            return {"__dict__": {k: self(v, f"{where}[{k!r}]") for k, v in value.items()}}
        if isinstance(value, np.ndarray):
            if value.dtype.kind in "biuf":
                return self.array(where, value)
            items = value.tolist()
            if value.ndim != 1 or not all(isinstance(v, _JSON_SCALARS) for v in items):
                raise TypeError(
                    f"{where}: an array of {value.dtype} values that are not numbers or strings"
                )
            return {"__labels__": [self(v, where) for v in items], "dtype": value.dtype.str}
        if isinstance(value, pd.DataFrame):
            columns = [str(c) for c in value.columns]
            return {
                "__frame__": columns,
                "arrays": [self.array(f"{where}/{c}", value[c].to_numpy()) for c in columns],
            }
        from crysatom_featurizers.embeddings import ElementEmbedding

        if isinstance(value, ElementEmbedding):
            return {
                "__embedding__": str(value.name),
                "symbols": list(value.symbols),
                "vectors": self.array(f"{where}/vectors", np.asarray(value.vectors)),
            }
        raise TypeError(
            f"{where}: a {type(value).__name__}; the safe model file holds numbers, strings, "
            "lists, dicts, arrays, tables and element embeddings (use joblib for other objects)"
        )


def _decode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        return arrays[value["__array__"]]
    if "__float__" in value:
        return float(value["__float__"])
    if "__tuple__" in value:
        return tuple(_decode(v, arrays) for v in value["__tuple__"])
    if "__pairs__" in value:
        return {_decode(k, arrays): _decode(v, arrays) for k, v in value["__pairs__"]}
    if "__dict__" in value:
        return {k: _decode(v, arrays) for k, v in value["__dict__"].items()}
    if "__labels__" in value:
        labels = [_decode(v, arrays) for v in value["__labels__"]]
        dtype = np.dtype(value["dtype"])
        out = np.empty(len(labels), dtype=dtype)
        out[:] = labels
        return out
    if "__frame__" in value:
        columns = value["__frame__"]
        return pd.DataFrame({c: _decode(a, arrays) for c, a in zip(columns, value["arrays"])})
    if "__embedding__" in value:
        from crysatom_featurizers.embeddings import ElementEmbedding

        vectors = _decode(value["vectors"], arrays)
        return ElementEmbedding(value["__embedding__"], value["symbols"], vectors)
    raise ValueError(f"unknown value in the model file: {sorted(value)}")


# ---- checksum --------------------------------------------------------------------------------


def _checksum(metadata: dict[str, str], tensors: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(metadata, sort_keys=True).encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes())  # C order, whatever the strides
    return digest.hexdigest()


# ---- save and load ---------------------------------------------------------------------------


def save_estimator(est: Any, path: str | os.PathLike[str]) -> Path:
    """Write a fitted graph estimator to ``path`` in the safe format, atomically."""
    import torch

    from crysatom_featurizers import __version__

    save = _safetensors().torch.save

    path = Path(path)
    if path.suffix != SAFE_SUFFIX:
        raise ValueError(f"{path}: the safe model file ends in {SAFE_SUFFIX}")
    if path.exists() and not _is_our_model_file(path):
        raise FileExistsError(
            f"{path} exists and is not a crysatom-featurizers model file; not replacing it "
            "(remove it or choose another path)"
        )
    name = type(est).__name__
    if name not in _estimator_classes() or type(est) is not _estimator_classes()[name]:
        raise TypeError(f"{name} has no safe model format")
    model = getattr(est, "model_", None)
    if model is None:
        raise ValueError(f"this {name} is not fitted yet; call fit before save")
    encode = _Encoder()
    params = dict(est.get_params(deep=False))
    params["checkpoint"] = None  # the author's checkpoint path is no part of the model
    params = {k: encode(v, f"params/{k}") for k, v in params.items()}
    fitted = {
        k: encode(v, f"fitted/{k}")
        for k, v in sorted(vars(est).items())
        if k not in params and k not in _NOT_SAVED and (k.endswith("_") or k.startswith("_"))
    }
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for key, value in encode.arrays.items():
        tensors[f"array/{key}"] = torch.from_numpy(np.array(value, copy=True))
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "package_version": __version__,
        "estimator": name,
        "params": json.dumps(params),
        "fitted": json.dumps(fitted),
        "network": json.dumps({"class": type(model).__name__, "config": model.config()}),
    }
    metadata["checksum"] = _checksum(metadata, tensors)
    payload = save(tensors, metadata=metadata)
    with atomic_write(path, "wb") as handle:
        handle.write(payload)
    return path


def is_safe_model_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` starts like a safetensors file (an 8-byte header length, then JSON).

    Reads a few bytes only; the full check is :func:`load_model`'s.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
            size = os.fstat(handle.fileno()).st_size
    except OSError:
        return False
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 0 < n <= size - 8 and head[8:9] == b"{"


def _is_our_model_file(path: Path) -> bool:
    """Whether ``path`` is a file whose safetensors header names this package's model format
    (reads the header only)."""
    if not path.is_file() or not is_safe_model_file(path):
        return False
    try:
        with open(path, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            if size > _MAX_HEADER_BYTES:
                return False
            header = json.loads(handle.read(size))
    except (OSError, ValueError):
        return False
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return isinstance(metadata, dict) and metadata.get("format") == FORMAT


def load_model(path: str | os.PathLike[str]) -> Any:
    """Load a graph estimator saved with ``save`` (the safe format), without unpickling.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.safetensors`` model file written by the ``save`` method of a graph estimator
        (``CGCNNRegressor``, ``CGCNNClassifier``, ``ALIGNNRegressor``, ``ALIGNNClassifier``) or
        by ``crysatom train``.

    Returns
    -------
    CGCNNRegressor, CGCNNClassifier, ALIGNNRegressor or ALIGNNClassifier
        The fitted estimator, ready to ``predict``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ModelFileError
        (a ``ValueError``) If the file is not a safe model file, was written by a newer format,
        names an estimator outside the allow-list, or fails its checksum (edited or damaged);
        the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")

    def fail(why: str) -> ModelFileError:
        return ModelFileError(f"{path} is not a usable model file: {why}")

    if not is_safe_model_file(path):
        raise fail("not a safetensors file (a pickle-based joblib file is not read here)")
    safetensors = _safetensors()
    data = path.read_bytes()
    try:
        tensors = safetensors.torch.load(data)
        header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    except (safetensors.SafetensorError, ValueError) as exc:
        raise fail(f"unreadable safetensors content ({exc})") from None
    metadata = dict(header.get("__metadata__") or {})
    if metadata.get("format") != FORMAT:
        raise fail("a safetensors file, but not a crysatom-featurizers model")
    try:
        version = int(metadata.get("format_version", ""))
    except ValueError:
        raise fail(f"format version {metadata.get('format_version')!r}") from None
    if version > FORMAT_VERSION:
        raise fail(
            f"written in model format {version} by crysatom-featurizers "
            f"{metadata.get('package_version')}; this version reads format {FORMAT_VERSION}: "
            "upgrade crysatom-featurizers"
        )
    stored = metadata.pop("checksum", None)
    try:
        actual = _checksum(metadata, tensors)
    except (TypeError, ValueError, RuntimeError) as exc:  # e.g. a dtype numpy cannot hold
        raise fail(f"unreadable tensors ({exc})") from None
    if stored != actual:
        raise fail("its checksum does not match its content (the file was edited or damaged)")
    classes = _estimator_classes()
    cls = classes.get(metadata.get("estimator", ""))
    if cls is None:
        raise fail(f"unknown estimator {metadata.get('estimator')!r} (known: {sorted(classes)})")
    arrays = {k[len("array/") :]: v.numpy() for k, v in tensors.items() if k.startswith("array/")}
    state = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    try:
        params = {k: _decode(v, arrays) for k, v in json.loads(metadata["params"]).items()}
        fitted = {k: _decode(v, arrays) for k, v in json.loads(metadata["fitted"]).items()}
        network = json.loads(metadata["network"])
        est = cls(**params)
        for name in fitted:  # fitted attributes only: nothing of the class is replaced
            if not _FITTED_NAME.fullmatch(name) or hasattr(cls, name):
                raise ValueError(f"{name!r} is not a fitted attribute")
        for name, value in fitted.items():
            setattr(est, name, value)
        est.model_ = est._network_from_config(network, state)
    except Exception as exc:  # the content is untrusted: any failure means a bad file
        raise fail(f"inconsistent content ({type(exc).__name__}: {exc})") from None
    return est
