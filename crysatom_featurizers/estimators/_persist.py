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

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from crysatom_featurizers.estimators._registry import estimator_classes
from crysatom_featurizers.persistence import (
    PlainDataEncoder,
    decode_plain_data,
    is_safetensors_file,
    read_safetensors,
    safetensors_metadata,
    write_safetensors,
)

FORMAT = "crysatom-featurizers model"
FORMAT_VERSION = 1
#: File name ending of the safe format.
SAFE_SUFFIX = ".safetensors"
#: Fitted attributes that are rebuilt or only needed during ``fit``.
_NOT_SAVED = ("model_", "_label_lookup")
#: Parameters that say where and how verbosely a fit ran, not what the model is: a model file
#: records their defaults, so that whoever loads it chooses them.
RUNTIME_PARAMS = ("checkpoint", "device", "n_threads", "num_workers", "verbose")
#: What a fitted attribute's name looks like (``history_``, ``_y_ndim``).
_FITTED_NAME = re.compile(r"_?[a-z][a-z0-9_]*_|_[a-z][a-z0-9_]*")


class ModelFileError(ValueError):
    """A model file that is not a valid safe model file (the message names the file)."""


# ---- save and load ---------------------------------------------------------------------------


def save_estimator(est: Any, path: str | os.PathLike[str]) -> Path:
    """Write a fitted graph estimator to ``path`` in the safe format, atomically."""
    import torch

    from crysatom_featurizers import __version__

    path = Path(path)
    if path.suffix != SAFE_SUFFIX:
        raise ValueError(f"{path}: the safe model file ends in {SAFE_SUFFIX}")
    if path.exists() and not _is_our_model_file(path):
        raise FileExistsError(
            f"{path} exists and is not a crysatom-featurizers model file; not replacing it "
            "(remove it or choose another path)"
        )
    name = type(est).__name__
    if estimator_classes().get(name) is not type(est):
        raise TypeError(f"{name} has no safe model format (it is not a registered estimator)")
    model = getattr(est, "model_", None)
    if model is None:
        raise ValueError(f"this {name} is not fitted yet; call fit before save")
    encode = PlainDataEncoder()
    params = dict(est.get_params(deep=False))
    defaults = type(est)().get_params(deep=False)
    for key in RUNTIME_PARAMS:  # where the fit ran is no part of the model
        if key in params:
            params[key] = defaults[key]
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
    return write_safetensors(path, tensors, metadata)


def is_safe_model_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` starts like a safetensors file (an 8-byte header length, then JSON).

    Reads a few bytes only; the full check is :func:`load_model`'s.
    """
    return is_safetensors_file(path)


def _is_our_model_file(path: Path) -> bool:
    """Whether ``path`` is a file whose safetensors header names this package's model format
    (reads the header only)."""
    metadata = safetensors_metadata(path)
    return metadata is not None and metadata.get("format") == FORMAT


def load_model(path: str | os.PathLike[str]) -> Any:
    """Load a graph estimator saved with ``save`` (the safe format), without unpickling.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.safetensors`` model file written by the ``save`` method of a graph estimator
        (``CGCNNRegressor``, ``CGCNNClassifier``, ``ALIGNNRegressor``, ``ALIGNNClassifier``, or
        a registered estimator of another network) or by ``crysatom train``.

    Returns
    -------
    estimator
        The fitted estimator, ready to ``predict``. Its ``device``, ``n_threads``,
        ``num_workers``, ``verbose`` and ``checkpoint`` are the defaults: where a model runs is
        the choice of whoever loads it (``set_params`` changes them).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ModelFileError
        (a ``ValueError``) If the file is not a safe model file, was written by a newer format,
        names an estimator that is not registered, fails its checksum (edited or damaged), or
        holds parameters or fitted attributes that the estimator refuses or that disagree with
        the network's weights; the message names the file.
    """
    path = Path(path)

    def fail(why: str) -> ModelFileError:
        return ModelFileError(f"{path} is not a usable model file: {why}")

    try:
        tensors, metadata = read_safetensors(path, FORMAT, [FORMAT_VERSION], fail)
    except FileNotFoundError:
        raise FileNotFoundError(f"model file {path} does not exist") from None
    classes = estimator_classes()
    cls = classes.get(metadata.get("estimator", ""))
    if cls is None:
        raise fail(f"unknown estimator {metadata.get('estimator')!r} (known: {sorted(classes)})")
    arrays = {k[len("array/") :]: v.numpy() for k, v in tensors.items() if k.startswith("array/")}
    state = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    try:
        params = {
            k: decode_plain_data(v, arrays) for k, v in json.loads(metadata["params"]).items()
        }
        fitted = {
            k: decode_plain_data(v, arrays) for k, v in json.loads(metadata["fitted"]).items()
        }
        network = json.loads(metadata["network"])
        defaults = cls().get_params(deep=False)
        for key in RUNTIME_PARAMS:
            if key in defaults:
                params[key] = defaults[key]
        est = cls(**params)
        est._check_params(given_validation=True)
        for name in fitted:  # fitted attributes only: nothing of the class is replaced
            if not _FITTED_NAME.fullmatch(name) or hasattr(cls, name):
                raise ValueError(f"{name!r} is not a fitted attribute")
        for name, value in fitted.items():
            setattr(est, name, value)
        est._check_fitted_state()
        n_out = int(network["config"]["n_targets"])
        if est._n_outputs() != n_out:
            raise ValueError(
                f"the fitted attributes give {est._n_outputs()} outputs, the network has {n_out}"
            )
        est.model_ = est._network_from_config(network, state)
    except Exception as exc:  # the content is untrusted: any failure means a bad file
        raise fail(f"inconsistent content ({type(exc).__name__}: {exc})") from None
    return est
