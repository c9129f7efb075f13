"""The network registry: a network defined outside the library (``tests/plugin_network.py``)
joins by registering itself, and then goes through everything the package's own networks do:
``clone``, ``GridSearchCV``, distillation, model files and ``crysatom train``/``predict``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from crysatom_featurizers import cli
from crysatom_featurizers.estimators import (
    ALIGNNClassifier,
    ALIGNNRegressor,
    CGCNNClassifier,
    CGCNNRegressor,
    available_networks,
    get_estimator,
    load_model,
    register_estimator,
)
from tests.plugin_network import MeanFieldNet, MeanFieldRegressor
from tests.prototypes import prototype_dataset

TINY = dict(embedding="cgcnn", epochs=4, batch_size=12, random_state=0, n_threads=1)


@pytest.fixture(scope="module")
def data():
    return prototype_dataset()


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return MeanFieldRegressor(**TINY).fit(X, y)


def test_the_registry_lists_every_network_and_task():
    table = available_networks().set_index("name")
    assert table.loc["cgcnn", "regressor"] == "CGCNNRegressor"
    assert table.loc["alignn", "classifier"] == "ALIGNNClassifier"
    assert table.loc["meanfield", "regressor"] == "MeanFieldRegressor"
    assert pd.isna(table.loc["meanfield", "classifier"])
    assert "Xie & Grossman" in table.loc["cgcnn", "description"]
    assert get_estimator("cgcnn") is CGCNNRegressor
    assert get_estimator("cgcnn", "classification") is CGCNNClassifier
    assert get_estimator("alignn") is ALIGNNRegressor
    assert get_estimator("alignn", "classification") is ALIGNNClassifier
    assert get_estimator("meanfield") is MeanFieldRegressor
    with pytest.raises(ValueError, match=r"unknown network 'nope'; registered: \['alignn'"):
        get_estimator("nope")
    with pytest.raises(ValueError, match="has no classification estimator"):
        get_estimator("meanfield", "classification")


def test_registration_refuses_clashes_and_bad_names():
    with pytest.raises(ValueError, match="lower-case identifier"):
        register_estimator("Mean Field")

    class Other(MeanFieldRegressor):
        pass

    with pytest.raises(ValueError, match="already has a regression estimator, MeanFieldRegressor"):
        register_estimator("meanfield")(Other)

    class CGCNNRegressorCopy(MeanFieldRegressor):
        pass

    CGCNNRegressorCopy.__name__ = "CGCNNRegressor"
    with pytest.raises(ValueError, match="already registered as CGCNNRegressor"):
        register_estimator("other_net")(CGCNNRegressorCopy)
    assert "other_net" not in set(available_networks()["name"])
    assert get_estimator("meanfield") is MeanFieldRegressor


def test_a_registered_network_fits_clones_and_searches(data, fitted):
    X, y = data
    assert isinstance(fitted.model_, MeanFieldNet)
    assert fitted.history_["train_mae"].iloc[-1] < fitted.history_["train_mae"].iloc[0]
    assert fitted.predict(X).shape == (len(X),)
    assert clone(fitted).get_params() == fitted.get_params()
    search = GridSearchCV(MeanFieldRegressor(**TINY), {"width": [8, 16]}, cv=2).fit(X, y)
    assert search.best_params_["width"] in (8, 16)
    # graphs built once with the estimator's own transformer are read as they are
    graphs = fitted.graph_transformer().fit_transform(X)
    np.testing.assert_array_equal(fitted.predict(graphs), fitted.predict(X))
    with pytest.raises(ValueError, match="width must be an integer >= 1"):
        MeanFieldRegressor(**{**TINY, "width": 0}).fit(X, y)


def test_a_registered_network_distils_and_round_trips_a_model_file(data, fitted, tmp_path):
    X, y = data
    loaded = load_model(fitted.save(tmp_path / "mf.safetensors"))
    assert type(loaded) is MeanFieldRegressor
    np.testing.assert_array_equal(loaded.set_params(n_threads=1).predict(X), fitted.predict(X))
    student = MeanFieldRegressor(**{**TINY, "distill": "uae", "rounds": 2}).fit(X, y)
    assert student.transfer_["mode"] == "distill"
    assert isinstance(student.model_, MeanFieldNet)  # the projection is dropped


def test_a_registered_network_trains_and_predicts_from_the_command_line(tmp_path, capsys):
    X, y = prototype_dataset()
    folder = tmp_path / "cifs"
    folder.mkdir()
    for i, structure in enumerate(X[:12]):
        structure.to(filename=str(folder / f"m{i}.cif"))
    ids = "".join(f"m{i},{y[i]:.5f}\n" for i in range(12))
    (folder / "id_prop.csv").write_text(ids)
    model = tmp_path / "mf.safetensors"
    argv = ["train", folder, "-o", model, "--model", "meanfield", "-e", "cgcnn", "--epochs", "2",
            "--threads", "1", "--val-fraction", "0.25", "-q"]  # fmt: skip
    assert cli.main([str(a) for a in argv]) == 0, capsys.readouterr().err
    assert type(load_model(model)) is MeanFieldRegressor
    out = tmp_path / "p.csv"
    assert cli.main(["predict", str(model), str(folder), "-o", str(out)]) == 0
    assert len(pd.read_csv(out)) == 12
    capsys.readouterr()
    code = cli.main([str(a) for a in [*argv[:4], "--model", "meanfield", "--n-conv", "2"]])
    err = capsys.readouterr().err
    assert code == 1 and "--n-conv do(es) not apply to --model meanfield" in err
    code = cli.main([str(a) for a in [*argv[:4], "--model", "nope"]])
    assert code == 1 and "--model: unknown network 'nope'" in capsys.readouterr().err
