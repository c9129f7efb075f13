"""Pretrained CGCNN encoders saved as weights only: the format, the writer and the reader.

A file holds the input map and the convolutions of a :class:`CGCNNEncoder` (a state dict of
tensors), the architecture needed to rebuild it, and metadata saying how it was made (config,
corpus, epochs, hardware, wall time, commit), plus SHA-256 checksums: ``checksum`` of the
weights (it identifies the encoder), and from format version 3 ``content_checksum`` of the
weights, the architecture and the metadata together, so that an edited radius or input
embedding is refused like edited weights. The shipped files' SHA-256 are pinned in
:data:`SHIPPED_ENCODERS`. It is
read with ``torch.load(weights_only=True)``: tensors, numbers, strings, lists and dicts only,
never arbitrary pickled objects. Corrupt, truncated, edited or foreign files raise
:class:`EncoderFileError` naming the file and what is wrong.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from crysatom_featurizers.io import atomic_write_bytes
from crysatom_featurizers.nn.encoder import CGCNNEncoder
from crysatom_featurizers.persistence import check_format_version, file_sha256, tensor_checksum

__all__ = [
    "ENCODER_DATA_DIR",
    "ENCODER_FORMAT",
    "SHIPPED_ENCODERS",
    "SHIPPED_ENCODER_SHA256",
    "ENCODER_FORMAT_VERSION",
    "EncoderFileError",
    "available_encoders",
    "content_checksum",
    "encoder_checksum",
    "file_sha256",
    "encoder_path",
    "load_encoder",
    "save_encoder",
]

ENCODER_FORMAT = "crysatom-featurizers/cgcnn-encoder"
ENCODER_FORMAT_VERSION = 3
#: Format versions this version reads (1: only the weights are checksummed; 3: the weights,
#: the architecture and the metadata). Format 2, whose content checksum had another layout,
#: was never shipped and is not read.
READABLE_FORMAT_VERSIONS = (1, 3)
#: Architecture keys stored with the weights; :class:`CGCNNEncoder` takes them as arguments.
ARCHITECTURE_KEYS = (
    "in_dim",
    "hidden_dim",
    "num_layers",
    "edge_dim",
    "batch_norm",
    "outer_softplus",
)


#: Folder of the encoder files that ship with the package.
ENCODER_DATA_DIR = Path(__file__).resolve().parent / "data"
#: Shipped encoders: name -> (file in :data:`ENCODER_DATA_DIR`, how it is made).
SHIPPED_ENCODERS: dict[str, tuple[str, str]] = {
    "crysatom": (
        "crysatom_encoder_200.pt",
        "CrysAtom pretraining, cpu config (200-dim, 5 convolutions): python -m "
        "training.pretrain --config cpu --dim 200, then python -m training.export_encoder",
    ),
    "uae": (
        "uae_encoder_64.pt",
        "CGCNN front-end (64 x 3, one-hot inputs) trained on property labels, leak-free: "
        "python -m training.supervised, then python -m training.ship_label_vectors",
    ),
}
#: SHA-256 of each shipped encoder file, as committed: a shipped file that differs (edited,
#: damaged, or regenerated without updating this pin) is refused.
SHIPPED_ENCODER_SHA256: dict[str, str] = {
    "crysatom": "0853e9f42a90723a30d92a39c08822c5d9ac4d3ef8f0b977392ac7689a04bf7f",
    "uae": "3392b0e42918d3d0300f2b9ce4fdf81acb4e7f715ba0d3704deb7adc35ef87af",
}


class EncoderFileError(ValueError):
    """An encoder file that cannot be read: corrupt, truncated or inconsistent."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"invalid encoder file {self.path!r}: {problem}")

    def __reduce__(self):
        return (type(self), (self.path, self.problem))


def encoder_checksum(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the sorted parameter names, dtypes, shapes and bytes of a state dict (the
    encoder's identity, :func:`~crysatom_featurizers.persistence.tensor_checksum`)."""
    return tensor_checksum(state_dict, record_end="\n")


def content_checksum(
    state_dict: Mapping[str, torch.Tensor], architecture: Mapping[str, Any], metadata: Mapping
) -> str:
    """SHA-256 of the weights, the architecture and the metadata (without
    ``content_checksum`` itself): one :func:`~crysatom_featurizers.persistence.tensor_checksum`
    over all of it."""
    rest = {k: v for k, v in metadata.items() if k != "content_checksum"}
    header = json.loads(json.dumps([dict(architecture), rest], default=str))
    return tensor_checksum(state_dict, header, record_end="\n")


def save_encoder(
    encoder: CGCNNEncoder, path: str | os.PathLike, metadata: Mapping[str, Any]
) -> Path:
    """Write ``encoder`` (weights and architecture) and ``metadata`` to ``path``, atomically.

    Parameters
    ----------
    encoder : CGCNNEncoder
        The trained encoder (input map and convolutions).
    path : path-like
        Output file (``.pt``).
    metadata : mapping
        JSON-serialisable provenance: at least ``input_embedding`` (the registry name of the
        element vectors the encoder reads, e.g. ``"cgcnn"``) and ``graph`` (radius,
        max_neighbors, gaussian_step, gaussian_width of the graphs it was trained on).

    Returns
    -------
    pathlib.Path
    """
    missing = [k for k in ("input_embedding", "graph") if k not in metadata]
    if missing:
        raise ValueError(f"encoder metadata needs {missing}")
    state = {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()}
    first = encoder.convs[0] if len(encoder.convs) else None
    architecture = {
        "in_dim": encoder.in_dim,
        "hidden_dim": encoder.hidden_dim,
        "num_layers": encoder.num_layers,
        "edge_dim": encoder.edge_dim,
        "batch_norm": (
            isinstance(first.bn_message, torch.nn.BatchNorm1d) if first is not None else True
        ),
        "outer_softplus": (
            bool(getattr(first, "outer_softplus", True)) if first is not None else True
        ),
    }
    # round-tripped through JSON first, so that the checksum covers what loading will read
    meta = json.loads(json.dumps({**metadata, "checksum": encoder_checksum(state)}, default=str))
    meta["content_checksum"] = content_checksum(state, architecture, meta)
    document = {
        "format": ENCODER_FORMAT,
        "format_version": ENCODER_FORMAT_VERSION,
        "architecture": architecture,
        "state_dict": state,
        # JSON text: any provenance, still loadable with weights_only=True
        "metadata": json.dumps(meta),
    }
    buffer = io.BytesIO()
    torch.save(document, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def encoder_path(spec: str | os.PathLike) -> Path:
    """The file of a shipped encoder name (``"crysatom"``), or ``spec`` itself as a path.

    Raises
    ------
    FileNotFoundError
        If a shipped encoder's file has not been generated, or a path does not exist.
    """
    if isinstance(spec, str) and spec.lower() in SHIPPED_ENCODERS:
        file_name, how = SHIPPED_ENCODERS[spec.lower()]
        path = ENCODER_DATA_DIR / file_name
        if not path.is_file():
            raise FileNotFoundError(
                f"the {spec!r} encoder has not been generated ({path} is missing); make it "
                f"with: {how}"
            )
        return path
    path = Path(spec).expanduser()
    if not path.is_file():
        names = ", ".join(sorted(SHIPPED_ENCODERS))
        raise FileNotFoundError(
            f"encoder {str(spec)!r} is neither a shipped encoder ({names}) nor an existing file"
        )
    return path


def available_encoders() -> list[dict[str, Any]]:
    """The shipped encoders: name, file, whether it is present, and its description."""
    out = []
    for name, (file_name, how) in SHIPPED_ENCODERS.items():
        path = ENCODER_DATA_DIR / file_name
        description = how
        if path.is_file():
            try:
                _, metadata = load_encoder(path)
                description = str(metadata.get("description", how))
            except (EncoderFileError, OSError) as exc:
                description = f"unreadable: {exc}"
        out.append(
            {"name": name, "file": str(path), "present": path.is_file(), "description": description}
        )
    return out


def load_encoder(spec: str | os.PathLike) -> tuple[CGCNNEncoder, dict[str, Any]]:
    """Rebuild a saved encoder (in eval mode) and return it with its metadata.

    Parameters
    ----------
    spec : str or path-like
        A shipped encoder's name (``"crysatom"``, see :data:`SHIPPED_ENCODERS`) or the path
        of an encoder file.

    Raises
    ------
    FileNotFoundError
        If the file does not exist (for a shipped name: has not been generated).
    EncoderFileError
        If the file is truncated or corrupt, is not an encoder file of this format, or its
        weights do not match its architecture or checksum.
    """
    path = encoder_path(spec)
    shipped = isinstance(spec, str) and spec.lower() in SHIPPED_ENCODERS
    if shipped:
        digest, pinned = file_sha256(path), SHIPPED_ENCODER_SHA256.get(spec.lower())
        if pinned is not None and digest != pinned:
            raise EncoderFileError(
                path,
                f"its SHA-256 {digest[:12]}... is not the one this release pins for the "
                f"shipped {spec.lower()!r} encoder: the file was edited or damaged "
                "(reinstall the package)",
            )
    try:
        document = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        detail = " ".join(str(exc).split())[:160]
        raise EncoderFileError(
            path, f"truncated or corrupt ({type(exc).__name__}: {detail})"
        ) from None
    except Exception as exc:  # weights_only refuses anything but plain data
        raise EncoderFileError(path, f"not a weights-only encoder file ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != ENCODER_FORMAT:
        raise EncoderFileError(path, f"not a {ENCODER_FORMAT!r} file")
    version = check_format_version(
        document.get("format_version"),
        READABLE_FORMAT_VERSIONS,
        lambda why: EncoderFileError(path, why),
    )
    architecture = document.get("architecture")
    state = document.get("state_dict")
    if not isinstance(architecture, dict) or set(architecture) != set(ARCHITECTURE_KEYS):
        raise EncoderFileError(path, f"field 'architecture' must have keys {ARCHITECTURE_KEYS}")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EncoderFileError(path, "field 'state_dict' must map names to tensors")
    try:
        metadata = json.loads(document.get("metadata", ""))
    except (TypeError, json.JSONDecodeError) as exc:
        raise EncoderFileError(path, f"field 'metadata' is not JSON ({exc})") from None
    if not isinstance(metadata, dict):
        raise EncoderFileError(path, "field 'metadata' must be a JSON object")
    if metadata.get("checksum") != encoder_checksum(state):
        raise EncoderFileError(path, "checksum mismatch: the weights were edited or corrupted")
    if (version >= 3 or "content_checksum" in metadata) and metadata.get(
        "content_checksum"
    ) != content_checksum(state, architecture, metadata):
        raise EncoderFileError(
            path, "checksum mismatch: the metadata or architecture were edited or corrupted"
        )
    encoder = CGCNNEncoder(**architecture)
    try:
        encoder.load_state_dict(state)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:200]
        raise EncoderFileError(path, f"weights do not fit the architecture ({detail})") from None
    encoder.eval()
    return encoder, metadata
