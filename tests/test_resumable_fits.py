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
KILLED_FIT = """
import os, signal, sys
from crysatom_featurizers.nn import train

save = train._save_checkpoint

def save_then_die(path, **state):
    save(path, **state)
    if state["epoch"] == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # as a preempted job: no cleanup, no exception

train._save_checkpoint = save_then_die
from crysatom_featurizers.estimators import CGCNNRegressor
from tests.prototypes import prototype_dataset

X, y = prototype_dataset()
CGCNNRegressor(checkpoint=sys.argv[1], **eval(sys.argv[2])).fit(X, y)
"""


def test_a_killed_fit_resumes_to_the_uninterrupted_result(tmp_path):
    import torch

    from crysatom_featurizers.estimators import CGCNNRegressor

    X, y = prototype_dataset()
    whole = CGCNNRegressor(**PARAMS).fit(X, y)
    path = tmp_path / "fit.ckpt"
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_FIT, str(path), repr(PARAMS)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr
    assert torch.load(path, weights_only=True)["epoch"] == 3
    resumed = CGCNNRegressor(checkpoint=path, **PARAMS).fit(X, y)
    np.testing.assert_array_equal(resumed.predict(X), whole.predict(X))
    assert resumed.n_iter_ == whole.n_iter_ and resumed.best_epoch_ == whole.best_epoch_
    columns = [c for c in whole.history_.columns if c != "time_s"]
    assert resumed.history_[columns].equals(whole.history_[columns])
    # the finished fit's checkpoint resumes to its end at once, with the same model
    again = CGCNNRegressor(checkpoint=path, **PARAMS).fit(X, y)
    np.testing.assert_array_equal(again.predict(X), whole.predict(X))


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
