"""Tests of the safe model file (``save`` / ``load_model``): exact round trips, no unpickling,
and a clear refusal of every file that is not one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from tests.prototypes import prototype_dataset

pytestmark = pytest.mark.gnn

TINY = dict(atom_fea_len=8, n_conv=1, epochs=3, batch_size=16, random_state=0, n_threads=1)
REPO = Path(__file__).resolve().parents[1]


def resign_checksum(metadata, tensors):
    """The checksum a model file's writer would give ``metadata`` and ``tensors``."""
    from crysatom_featurizers.persistence import tensor_checksum

    return tensor_checksum(tensors, metadata)


def resigned(edit):
    """An edit of a model file's metadata and tensors that signs the result again, as a forger
    who knows the checksum would."""

    def apply(metadata, tensors):
        metadata.pop("checksum")
        edit(metadata, tensors)
        metadata["checksum"] = resign_checksum(metadata, tensors)

    return apply


@pytest.fixture(scope="module")
def data():
    return prototype_dataset()


@pytest.fixture(scope="module")
def fitted(data):
    from crysatom_featurizers.estimators import CGCNNRegressor

    X, y = data
    return CGCNNRegressor(embedding="cgcnn", patience=2, **TINY).fit(X, y)


def _round_trip(est, path: Path):
    from crysatom_featurizers.estimators import load_model

    assert est.save(path) == path
    return load_model(path).set_params(n_threads=est.n_threads)  # as the fit ran


def test_regressor_round_trip_is_exact(data, fitted, tmp_path):
    from crysatom_featurizers.estimators import load_model

    X, _ = data
    # where the fit ran is the loader's choice: the file holds the defaults
    runtime = {"device": "auto", "n_threads": None, "num_workers": 0, "verbose": 0}
    fitted.save(tmp_path / "m.safetensors")
    assert {k: load_model(tmp_path / "m.safetensors").get_params()[k] for k in runtime} == runtime
    loaded = _round_trip(fitted, tmp_path / "m.safetensors")
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    assert loaded.get_params() == fitted.get_params()
    assert loaded.history_.equals(fitted.history_)
    for name in ("best_epoch_", "n_iter_", "embedding_name_", "embedding_dim_", "n_targets_"):
        assert getattr(loaded, name) == getattr(fitted, name), name
    np.testing.assert_array_equal(loaded.target_scale_, fitted.target_scale_)
    np.testing.assert_array_equal(loaded.validation_indices_, fitted.validation_indices_)


def test_save_replaces_a_model_file_but_no_other_file(data, fitted, tmp_path):
    X, _ = data
    path = tmp_path / "m.safetensors"
    fitted.save(path)
    fitted.save(path)  # an earlier model file is replaced
    notes = tmp_path / "notes.safetensors"
    notes.write_text("my notes")
    with pytest.raises(FileExistsError, match="not a crysatom-featurizers model file"):
        fitted.save(notes)
    assert notes.read_text() == "my notes"
    other = tmp_path / "other.safetensors"
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(2)}, str(other), metadata={"format": "pt"})
    before = other.read_bytes()
    with pytest.raises(FileExistsError):
        fitted.save(other)
    assert other.read_bytes() == before


def test_round_trips_of_other_estimators_and_parameters(data, tmp_path):
    from crysatom_featurizers.embeddings import resolve
    from crysatom_featurizers.estimators import CGCNNClassifier, CGCNNRegressor

    X, y = data
    own = resolve("random:8")  # an ElementEmbedding object as the parameter
    multi = CGCNNRegressor(embedding=own, lr_milestones=(1, 2), **TINY).fit(X, np.c_[y, y**2])
    loaded = _round_trip(multi, tmp_path / "multi.safetensors")
    np.testing.assert_array_equal(loaded.predict(X), multi.predict(X))
    assert loaded.predict(X).shape == (len(X), 2) and loaded.lr_milestones == (1, 2)
    np.testing.assert_array_equal(loaded.embedding.vectors, own.vectors)

    tiny = {k: v for k, v in TINY.items() if k not in ("atom_fea_len", "n_conv")}
    tuned = CGCNNRegressor(finetune="uae", encoder_lr=1e-4, **tiny).fit(X, y)
    loaded = _round_trip(tuned, tmp_path / "ft.safetensors")
    np.testing.assert_array_equal(loaded.predict(X), tuned.predict(X))
    assert loaded.transfer_ == tuned.transfer_

    for labels, weight in (
        (np.where(y > np.median(y), "large", "small"), {"large": 2.0, "small": 1.0}),
        ((y > np.median(y)).astype(int), {0: 1.0, 1: 3.0}),  # keys that are not strings
    ):
        clf = CGCNNClassifier(embedding="cgcnn", class_weight=weight, **TINY).fit(X, labels)
        loaded = _round_trip(clf, tmp_path / "clf.safetensors")
        np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
        np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
        assert loaded.classes_.dtype == clf.classes_.dtype and loaded.class_weight == weight


def test_what_cannot_be_saved_is_refused_by_name(data, fitted, tmp_path):
    from crysatom_featurizers.estimators import CGCNNRegressor

    with pytest.raises(NotFittedError):
        CGCNNRegressor().save(tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match=r"ends in \.safetensors"):
        fitted.save(tmp_path / "m.joblib")
    X, y = data
    odd = CGCNNRegressor(embedding="cgcnn", **{**TINY, "random_state": np.random.RandomState(0)})
    with pytest.raises(TypeError, match="params/random_state: a RandomState"):
        odd.fit(X, y).save(tmp_path / "odd.safetensors")
    assert not (tmp_path / "odd.safetensors").exists()


def test_a_saved_model_loads_in_a_fresh_process_without_unpickling(data, fitted, tmp_path):
    X, _ = data
    path = fitted.save(tmp_path / "m.safetensors")
    expected = tmp_path / "expected.npy"
    np.save(expected, fitted.predict(X))
    code = f"""
import pickle, sys
import numpy as np, torch

def forbidden(*args, **kwargs):
    raise AssertionError("a pickle was read")

def audit(event, args):
    if event == "pickle.find_class":  # every unpickled object that is not plain data
        raise AssertionError(f"unpickling {{args}}")

sys.addaudithook(audit)
pickle.load = pickle.loads = forbidden
torch.load = forbidden
from crysatom_featurizers.estimators import load_model
from tests.prototypes import prototype_dataset

X, _ = prototype_dataset()
model = load_model({str(path)!r})
assert np.array_equal(model.predict(X), np.load({str(expected)!r}))
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def _rewrite(path: Path, out: Path, edit) -> Path:
    """``path`` with its metadata changed by ``edit`` (the tensors kept), written to ``out``."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), "pt") as handle:
        metadata = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    edit(metadata, tensors)
    save_file(tensors, str(out), metadata=metadata)
    return out


def test_edited_damaged_or_foreign_files_are_refused(fitted, tmp_path):
    import torch

    from crysatom_featurizers.estimators import ModelFileError, load_model

    path = fitted.save(tmp_path / "m.safetensors")

    def radius(metadata, tensors):
        params = json.loads(metadata["params"])
        params["radius"] = 6.0
        metadata["params"] = json.dumps(params)

    def weight(metadata, tensors):
        tensors["model/fc_out.bias"] = tensors["model/fc_out.bias"] + 1.0

    for name, edit in (("radius", radius), ("weight", weight)):
        edited = _rewrite(path, tmp_path / f"{name}.safetensors", edit)
        with pytest.raises(ModelFileError, match="checksum does not match") as info:
            load_model(edited)
        assert str(edited) in str(info.value) and "\n" not in str(info.value)

    def changed(changes):
        return resigned(lambda metadata, tensors: metadata.update(changes))

    newer = _rewrite(path, tmp_path / "newer.safetensors", changed({"format_version": "99"}))
    with pytest.raises(ModelFileError, match="format 99 .* upgrade"):
        load_model(newer)
    other = _rewrite(path, tmp_path / "other.safetensors", changed({"estimator": "Popen"}))
    with pytest.raises(ModelFileError, match="unknown estimator 'Popen'"):
        load_model(other)
    from safetensors.torch import save_file

    plain = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(ModelFileError, match="not a crysatom-featurizers model"):
        load_model(plain)
    pickle_file = tmp_path / "m.joblib"
    import joblib

    joblib.dump({"a": 1}, pickle_file)
    with pytest.raises(ModelFileError, match="not a safetensors file"):
        load_model(pickle_file)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match="unreadable|checksum"):
        load_model(truncated)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.safetensors")


def test_crafted_content_is_refused_as_a_bad_file(fitted, tmp_path):
    from crysatom_featurizers.estimators import ModelFileError, load_model

    path = fitted.save(tmp_path / "m.safetensors")

    def overwrite_method(metadata, tensors):
        fitted_attrs = json.loads(metadata["fitted"])
        fitted_attrs["predict"] = 1
        metadata["fitted"] = json.dumps(fitted_attrs)

    def huge_layer(metadata, tensors):
        network = json.loads(metadata["network"])
        network["config"]["h_fea_len"] = 10**12  # would allocate terabytes if trusted
        metadata["network"] = json.dumps(network)

    def list_params(metadata, tensors):
        metadata["params"] = json.dumps([1, 2])

    for name, edit, why in (
        ("method", overwrite_method, "'predict' is not a fitted attribute"),
        ("huge", huge_layer, "h_fea_len=1000000000000 but the weights have 128"),
        ("list", list_params, "inconsistent content"),
    ):
        crafted = _rewrite(path, tmp_path / f"{name}.safetensors", resigned(edit))
        with pytest.raises(ModelFileError, match=why):
            load_model(crafted)


def test_saved_models_leave_the_checkpoint_path_out(data, tmp_path):
    from crysatom_featurizers.estimators import CGCNNRegressor, load_model

    X, y = data
    est = CGCNNRegressor(embedding="cgcnn", checkpoint=tmp_path / "fit.ckpt", **TINY).fit(X, y)
    assert load_model(est.save(tmp_path / "m.safetensors")).checkpoint is None
    with pytest.raises(ValueError, match="checkpoint needs an integer random_state"):
        CGCNNRegressor(
            embedding="cgcnn", checkpoint=tmp_path / "b.ckpt", **{**TINY, "random_state": None}
        ).fit(X, y)


def test_a_model_pickled_before_graph_settings_were_stored_saves(data, fitted, tmp_path):
    import copy

    from crysatom_featurizers.estimators import load_model

    X, _ = data
    old = copy.deepcopy(fitted)
    del old.model_.graph  # as unpickled from the previous release
    loaded = load_model(old.save(tmp_path / "old.safetensors")).set_params(n_threads=1)
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))


def test_forged_parameters_and_fitted_state_are_checked_on_load(data, fitted, tmp_path):
    from crysatom_featurizers.estimators import CGCNNClassifier, ModelFileError, load_model

    path = fitted.save(tmp_path / "m.safetensors")

    def params(**changes):
        def edit(metadata, tensors):
            values = json.loads(metadata["params"])
            values.update(changes)
            metadata["params"] = json.dumps(values)

        return edit

    def fitted_attr(name, value):
        def edit(metadata, tensors):
            values = json.loads(metadata["fitted"])
            values[name] = value
            metadata["fitted"] = json.dumps(values)

        return edit

    # where the fit runs is the loader's choice, whatever the file says
    threads = _rewrite(path, tmp_path / "threads.safetensors", resigned(params(n_threads=10**6)))
    assert load_model(threads).n_threads is None
    for name, edit, why in (
        ("epochs", params(epochs=-1), "epochs must be an integer >= 1"),
        ("lr", params(lr="fast"), "lr"),
        ("targets", fitted_attr("n_targets_", 3), "target_mean_ must be 3 finite numbers"),
    ):
        crafted = _rewrite(path, tmp_path / f"{name}.safetensors", resigned(edit))
        with pytest.raises(ModelFileError, match=why):
            load_model(crafted)

    X, y = data
    labels = np.where(y > np.median(y), "large", "small")
    clf = CGCNNClassifier(embedding="cgcnn", **TINY).fit(X, labels)
    clf_path = clf.save(tmp_path / "clf.safetensors")
    three = {"__labels__": ["large", "small", "medium"], "dtype": "<U6"}
    crafted = _rewrite(
        clf_path, tmp_path / "three.safetensors", resigned(fitted_attr("classes_", three))
    )
    with pytest.raises(
        ModelFileError, match="the fitted attributes give 3 outputs, the network has 2"
    ):
        load_model(crafted)


def test_one_checksum_and_one_version_policy():
    import torch

    from crysatom_featurizers.persistence import check_format_version, tensor_checksum

    a = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    base = tensor_checksum({"a": a}, {"k": 1})
    assert tensor_checksum({"a": a.t().contiguous().t()}, {"k": 1}) == base  # layout aside
    assert tensor_checksum({"a": a.numpy()}, {"k": 1}) != base  # numpy names its dtype apart
    assert tensor_checksum({"b": a}, {"k": 1}) != base
    assert tensor_checksum({"a": a.double()}, {"k": 1}) != base
    assert tensor_checksum({"a": a.reshape(3, 2)}, {"k": 1}) != base
    assert tensor_checksum({"a": a}, {"k": 2}) != base
    assert tensor_checksum({"a": a}, {"k": 1}, record_end="\n") != base

    def fail(why):
        return ValueError(why)

    assert check_format_version("2", [1, 2], fail) == 2
    with pytest.raises(ValueError, match=r"format 3 by crysatom-featurizers 9\.0; .* upgrade"):
        check_format_version(3, [1, 2], fail, writer="9.0")
    with pytest.raises(ValueError, match="format 1 is no longer read"):
        check_format_version(1, [2], fail)
    for bad in ("two", None, True, 1.5, " 1x"):
        with pytest.raises(ValueError, match="is not a version number"):
            check_format_version(bad, [1], fail)
