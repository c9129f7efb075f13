"""The fingerprint of a graph estimator's fit, which a resumable fit's checkpoint must match
(not public API)."""

from __future__ import annotations

from typing import Any

import numpy as np

from crysatom_featurizers.persistence import PlainDataEncoder, tensor_checksum

#: Parameters that only say where or how verbosely a fit runs, not what it computes.
_RUNTIME_PARAMS = ("checkpoint", "verbose", "n_threads", "num_workers", "device", "embedding")


def run_fingerprint(
    est: Any,
    embedding: Any,
    transfer: Any,
    packed: Any,
    targets: Any,
    train_idx: Any,
    val_idx: Any,
    seed: int,
) -> str:
    """SHA-256 of what a fit depends on: the estimator, the package version, its parameters
    (without those that only say where or how verbosely it runs), the element vectors, the
    encoder's weights, the graphs, the targets, the split and the seed. A checkpoint of
    another fingerprint is not resumed; without a checkpoint the fingerprint is ``""``."""
    from crysatom_featurizers import __version__

    if getattr(est, "checkpoint", None) is None:
        return ""
    encode = PlainDataEncoder()
    try:
        params = {
            k: encode(v, k)
            for k, v in sorted(est.get_params(deep=False).items())
            if k not in _RUNTIME_PARAMS
        }
    except TypeError as exc:
        raise ValueError(f"checkpoint: cannot record the parameters of the fit ({exc})") from None
    encoder = None if transfer is None else transfer.metadata.get("checksum")
    header = [type(est).__name__, __version__, params, encoder, seed]
    table, _ = embedding.lookup_table()
    arrays = {
        "embedding": np.asarray(table, dtype=np.float64),
        "train": np.asarray(train_idx),
        "val": np.asarray(val_idx),
        "targets": np.asarray(targets),  # as given: targets in their units, or class codes
    }
    arrays.update({f"params/{k}": v for k, v in encode.arrays.items()})
    arrays.update({f"graphs/{k}": v for k, v in packed.tensors.items()})
    return tensor_checksum(arrays, header)
