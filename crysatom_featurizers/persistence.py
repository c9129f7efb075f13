"""What the package writes and reads back: one checksum, one format-version policy, one set of
load-time checks, for the three kinds of file it keeps.

* **Model files** (``.safetensors``, written by an estimator's ``save``, read by
  :func:`crysatom_featurizers.estimators.load_model`): weights and plain data, never unpickled.
* **Encoder files** (``.pt``, :func:`crysatom_featurizers.nn.save_encoder`): a pretrained
  CGCNN encoder, read with ``torch.load(weights_only=True)``.
* **Fit checkpoints** (the ``checkpoint`` parameter of the estimators): the state of an
  interrupted fit, read with ``torch.load(weights_only=True)`` and resumed only by the run it
  belongs to (the same fingerprint).

Every file names its format and its format version. A reader accepts the versions it lists and
refuses a newer one with "upgrade crysatom-featurizers" (:func:`check_format_version`). Every
checksum is :func:`tensor_checksum`: SHA-256 over a JSON header and the name, dtype, shape and
bytes of every tensor or array, in name order. This module holds no estimator or network: the
model file's content is the estimators' business (``estimators/_persist.py``), the encoder's the
encoders' (``nn/pretrained.py``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crysatom_featurizers.io import atomic_write

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "PlainDataEncoder",
    "check_format_version",
    "decode_plain_data",
    "file_sha256",
    "load_checkpoint",
    "make_checkpoint_folder",
    "read_safetensors",
    "safetensors_metadata",
    "save_checkpoint",
    "tensor_checksum",
    "write_safetensors",
]

#: Format of the fit checkpoints and the version written.
CHECKPOINT_FORMAT = "crysatom-featurizers/train-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
#: A model file's JSON header is a few kB; a longer one is not read when checking a path.
MAX_HEADER_BYTES = 64 * 2**20


# ---- checksums -------------------------------------------------------------------------------


def _array_record(value: Any) -> tuple[str, tuple[int, ...], bytes]:
    """dtype name, shape and C-order bytes of a torch tensor or a numpy array."""
    if isinstance(value, np.ndarray):
        return value.dtype.str, tuple(value.shape), np.ascontiguousarray(value).tobytes()
    tensor = value.detach().cpu().contiguous()
    return str(tensor.dtype), tuple(tensor.shape), tensor.numpy().tobytes()


def tensor_checksum(
    tensors: Mapping[str, Any], header: Any = None, *, record_end: str = "|"
) -> str:
    """SHA-256 of ``header`` (as JSON with sorted keys; nothing when None) and then, in name
    order, each tensor's ``name|dtype|shape`` line and its bytes.

    Parameters
    ----------
    tensors : mapping of str to torch.Tensor or numpy.ndarray
        The named arrays; their memory layout does not matter (C order is hashed).
    header : JSON-serialisable, optional
        What else the checksum covers (metadata, parameters).
    record_end : str, default="|"
        Ends each ``name|dtype|shape`` line: ``"|"`` in model files and checkpoints, ``"\\n"``
        in encoder files (their layout since format 1).

    Raises
    ------
    TypeError
        If a tensor has a dtype that numpy cannot hold (e.g. bfloat16).
    """
    digest = hashlib.sha256()
    if header is not None:
        digest.update(json.dumps(header, sort_keys=True).encode())
    for name in sorted(tensors):
        dtype, shape, data = _array_record(tensors[name])
        digest.update(f"{name}|{dtype}|{shape}{record_end}".encode())
        digest.update(data)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (what a release pins for a shipped file)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---- format versions -------------------------------------------------------------------------


def check_format_version(
    found: Any,
    readable: Iterable[int],
    fail: Callable[[str], Exception],
    *,
    writer: Any = None,
) -> int:
    """The format version of a file, if this release reads it.

    Parameters
    ----------
    found : Any
        The version the file records (an int, or its text).
    readable : iterable of int
        The versions this release reads; a version above all of them is newer than the package.
    fail : callable
        Makes the exception to raise from a sentence saying what is wrong.
    writer : Any, optional
        The package version that wrote the file, named when the file is newer.

    Raises
    ------
    Exception
        ``fail(...)`` when ``found`` is not an integer, is newer than this release (the
        message says to upgrade) or is an older version no longer read.
    """
    readable = sorted(readable)
    try:
        version = int(found)
        if isinstance(found, bool) or str(version) != str(found).strip():
            raise ValueError
    except (TypeError, ValueError):
        raise fail(f"format version {found!r} is not a version number") from None
    if version > readable[-1]:
        by = f" by crysatom-featurizers {writer}" if writer else ""
        raise fail(
            f"written in format {version}{by}; this release reads format "
            f"{', '.join(map(str, readable))}: upgrade crysatom-featurizers"
        )
    if version not in readable:
        raise fail(
            f"format {version} is no longer read (this release reads "
            f"{', '.join(map(str, readable))})"
        )
    return version


# ---- plain data <-> JSON + arrays ------------------------------------------------------------

_JSON_SCALARS = (str, int, float, bool, type(None))


class PlainDataEncoder:
    """Turns values into JSON, collecting numeric arrays apart (under ``where`` keys).

    It takes numbers, strings, paths, lists, tuples, dicts, arrays (numeric, or 1-d of
    strings/numbers), tables of numbers and element embeddings; anything else raises a
    ``TypeError`` naming where it was, so that a file never holds what it cannot give back.
    :func:`decode_plain_data` reverses it.
    """

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
            if any(not isinstance(k, str) for k in value):
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


def decode_plain_data(value: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    """The value that :class:`PlainDataEncoder` turned into ``value`` and ``arrays``.

    Raises
    ------
    ValueError
        On a JSON object that the encoder does not write.
    KeyError
        If an array it references is missing.
    """
    if isinstance(value, list):
        return [decode_plain_data(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        return arrays[value["__array__"]]
    if "__float__" in value:
        return float(value["__float__"])
    if "__tuple__" in value:
        return tuple(decode_plain_data(v, arrays) for v in value["__tuple__"])
    if "__pairs__" in value:
        return {
            decode_plain_data(k, arrays): decode_plain_data(v, arrays)
            for k, v in value["__pairs__"]
        }
    if "__dict__" in value:
        return {k: decode_plain_data(v, arrays) for k, v in value["__dict__"].items()}
    if "__labels__" in value:
        labels = [decode_plain_data(v, arrays) for v in value["__labels__"]]
        out = np.empty(len(labels), dtype=np.dtype(value["dtype"]))
        out[:] = labels
        return out
    if "__frame__" in value:
        columns = value["__frame__"]
        return pd.DataFrame(
            {c: decode_plain_data(a, arrays) for c, a in zip(columns, value["arrays"])}
        )
    if "__embedding__" in value:
        from crysatom_featurizers.embeddings import ElementEmbedding

        vectors = decode_plain_data(value["vectors"], arrays)
        return ElementEmbedding(value["__embedding__"], value["symbols"], vectors)
    raise ValueError(f"unknown value in the file: {sorted(value)}")


# ---- safetensors documents -------------------------------------------------------------------


def _safetensors() -> Any:
    try:
        import torch  # noqa: F401  (safetensors.torch needs it)
    except ImportError:
        raise ImportError(
            "model files need PyTorch: pip install 'crysatom-featurizers[gnn]' (or pip install "
            "torch)"
        ) from None
    try:
        import safetensors.torch
    except ImportError:
        raise ImportError(
            "model files need the safetensors package: pip install safetensors (it comes with "
            "the [gnn] extra)"
        ) from None
    return safetensors


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 0 < n <= size - 8 and head[8:9] == b"{"


def is_safetensors_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` starts like a safetensors file (an 8-byte header length, then JSON);
    reads 9 bytes."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
            size = os.fstat(handle.fileno()).st_size
    except OSError:
        return False
    return _looks_like_safetensors(head, size)


def safetensors_metadata(path: str | os.PathLike[str]) -> dict[str, str] | None:
    """The string metadata of a safetensors file's header, or None when ``path`` is not a
    readable safetensors file (reads the header only, at most :data:`MAX_HEADER_BYTES`)."""
    if not Path(path).is_file() or not is_safetensors_file(path):
        return None
    try:
        with open(path, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            if size > MAX_HEADER_BYTES:
                return None
            header = json.loads(handle.read(size))
    except (OSError, ValueError):
        return None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return metadata if isinstance(metadata, dict) else None


def write_safetensors(
    path: str | os.PathLike[str], tensors: dict[str, Any], metadata: dict[str, str]
) -> Path:
    """Write tensors and string metadata, with ``metadata["checksum"]`` added (the
    :func:`tensor_checksum` of both), to ``path`` atomically."""
    save = _safetensors().torch.save
    metadata = dict(metadata)
    metadata["checksum"] = tensor_checksum(tensors, metadata)
    payload = save(tensors, metadata=metadata)
    with atomic_write(path, "wb") as handle:
        handle.write(payload)
    return Path(path)


def read_safetensors(
    path: str | os.PathLike[str],
    file_format: str,
    readable: Iterable[int],
    fail: Callable[[str], Exception],
) -> tuple[dict[str, Any], dict[str, str]]:
    """Tensors and metadata (without ``checksum``) of a file written by
    :func:`write_safetensors`, after every load-time check: it exists, is a safetensors file of
    ``file_format`` in a readable version, and its checksum matches its content.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    Exception
        ``fail(...)`` for every other problem, saying which.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    if not is_safetensors_file(path):
        raise fail("not a safetensors file (a pickle-based joblib file is not read here)")
    safetensors = _safetensors()
    data = path.read_bytes()
    try:
        tensors = safetensors.torch.load(data)
        header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    except (safetensors.SafetensorError, ValueError) as exc:
        raise fail(f"unreadable safetensors content ({exc})") from None
    metadata = dict(header.get("__metadata__") or {})
    if metadata.get("format") != file_format:
        raise fail(f"a safetensors file, but not a {file_format}")
    check_format_version(
        metadata.get("format_version"), readable, fail, writer=metadata.get("package_version")
    )
    stored = metadata.pop("checksum", None)
    try:
        actual = tensor_checksum(tensors, metadata)
    except (TypeError, ValueError, RuntimeError) as exc:  # e.g. a dtype numpy cannot hold
        raise fail(f"unreadable tensors ({exc})") from None
    if stored != actual:
        raise fail("its checksum does not match its content (the file was edited or damaged)")
    return tensors, metadata


# ---- fit checkpoints -------------------------------------------------------------------------


def make_checkpoint_folder(path: str | os.PathLike[str]) -> None:
    """Create the folder of a checkpoint path now, rather than fail after the first epoch.

    Raises
    ------
    ValueError
        If the folder cannot be created (the message names the checkpoint and the folder).
    """
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(
            f"checkpoint {str(path)!r}: cannot create its folder {str(folder)!r} "
            f"({exc.strerror or type(exc).__name__})"
        ) from None


def save_checkpoint(path: str | os.PathLike[str], state: Mapping[str, Any]) -> None:
    """Write a fit's state (tensors, numbers, strings, lists and dicts) atomically."""
    import torch

    document = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        **state,
    }
    with atomic_write(path, "wb") as handle:
        torch.save(document, handle)


def load_checkpoint(path: str | os.PathLike[str], fingerprint: str) -> dict[str, Any]:
    """The state saved by :func:`save_checkpoint`, if it belongs to the run ``fingerprint``.

    Raises
    ------
    ValueError
        If the file is not a checkpoint of this package (it is never unpickled), was written
        by a newer release, or belongs to another run.
    """
    import torch

    where = f"the training checkpoint {str(path)!r}"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # not torch's own text: it suggests weights_only=False, i.e. unpickling the file
        raise ValueError(
            f"cannot read {where} ({type(exc).__name__}): it is not a checkpoint written by "
            "this package, or it is damaged; it was not unpickled. Remove it or choose another "
            "checkpoint path"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{str(path)!r} is not a training checkpoint")
    check_format_version(
        state.get("format_version"),
        [CHECKPOINT_FORMAT_VERSION],
        lambda why: ValueError(f"{where}: {why}"),
    )
    if state.get("fingerprint") != fingerprint:
        raise ValueError(
            f"the checkpoint {str(path)!r} belongs to another run (other data or settings); "
            "remove it or choose another checkpoint path"
        )
    return state
