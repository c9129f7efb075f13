"""Resumable fits: a fit killed after an epoch resumes from its checkpoint and ends exactly as an
uninterrupted one; a checkpoint of another fit is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.prototypes import prototype_dataset

pytestmark = pytest.mark.gnn

REPO = Path(__file__).resolve().parents[1]
PARAMS = dict(
    embedding="cgcnn",
    atom_fea_len=8,
    n_conv=1,
    h_fea_len=8,
    epochs=6,
    batch_size=8,
    patience=4,
    lr_schedule="cosine",
    random_state=0,
    n_threads=1,
    device="cpu",
)
FIT = """
import os, signal, sys
import numpy as np
from crysatom_featurizers.nn import train

save = train.save_checkpoint

def save_then_die(path, state):
    save(path, state)
    if state["epoch"] == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # as a preempted job: no cleanup, no exception

checkpoint, params, kill, out = sys.argv[1], eval(sys.argv[2]), sys.argv[3] == "kill", sys.argv[4]
if kill:
    train.save_checkpoint = save_then_die
from crysatom_featurizers.estimators import CGCNNRegressor
from tests.prototypes import prototype_dataset

X, y = prototype_dataset()
model = CGCNNRegressor(checkpoint=None if checkpoint == "-" else checkpoint, **params).fit(X, y)
np.save(out, np.r_[model.predict(X), model.n_iter_, model.best_epoch_])
"""


def _fit(tmp_path: Path, checkpoint: str, kill: bool, name: str):
    """A fit in a process of its own (as a rerun after an interruption is); its predictions,
    epochs run and best epoch, or None when it was killed."""
    out = tmp_path / f"{name}.npy"
    done = subprocess.run(
        [sys.executable, "-c", FIT, checkpoint, repr(PARAMS), "kill" if kill else "run", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if kill:
        assert done.returncode == -9, done.stderr
        return None
    assert done.returncode == 0, done.stderr
    return np.load(out)


def test_a_killed_fit_resumes_to_the_uninterrupted_result(tmp_path):
    import torch

    whole = _fit(tmp_path, "-", kill=False, name="whole")
    path = tmp_path / "fit.ckpt"
    assert _fit(tmp_path, str(path), kill=True, name="killed") is None
    assert torch.load(path, weights_only=True)["epoch"] == 3
    resumed = _fit(tmp_path, str(path), kill=False, name="resumed")
    np.testing.assert_array_equal(resumed, whole)  # predictions, epochs run, best epoch
    # the finished fit's checkpoint resumes to its end at once, with the same model
    np.testing.assert_array_equal(_fit(tmp_path, str(path), kill=False, name="again"), whole)


def test_a_checkpoint_of_another_fit_is_an_error(tmp_path):
    from crysatom_featurizers.estimators import CGCNNRegressor

    X, y = prototype_dataset()
    path = tmp_path / "fit.ckpt"
    params = {**PARAMS, "epochs": 2}
    CGCNNRegressor(checkpoint=path, **params).fit(X, y)
    for other in (
        {"X": X, "y": y + 1.0},  # other targets
        {"X": X[:-1], "y": y[:-1]},  # other crystals
    ):
        with pytest.raises(ValueError, match="belongs to another run"):
            CGCNNRegressor(checkpoint=path, **params).fit(other["X"], other["y"])
    with pytest.raises(ValueError, match="belongs to another run"):
        CGCNNRegressor(checkpoint=path, **{**params, "lr": 0.01}).fit(X, y)
    # where and how verbosely it runs are not part of the fit
    CGCNNRegressor(checkpoint=path, **{**params, "verbose": 1, "n_threads": 2}).fit(X, y)
