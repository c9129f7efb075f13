"""Fine-tuning and distillation from a pretrained encoder: the estimator options, their errors
and the nn modules. Tiny encoders are built and saved here, so no shipped file is needed."""

from __future__ import annotations

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from crysatom_featurizers.estimators import CGCNNClassifier, CGCNNRegressor
from crysatom_featurizers.graphs import CGCNN_GRAPH, PackedGraphs, structures_to_graphs
from crysatom_featurizers.nn import CGCNN, CGCNNEncoder, EncoderFileError, save_encoder
from crysatom_featurizers.nn.transfer import DistilledModel, NodeDistillation, node_embeddings
from tests.prototypes import prototype_dataset

GRAPH = {
    "radius": CGCNN_GRAPH.radius,
    "max_neighbors": CGCNN_GRAPH.max_neighbors,
    "gaussian_step": CGCNN_GRAPH.gaussian_step,
    "gaussian_width": CGCNN_GRAPH.gaussian_width,
}
# a small head and few epochs: the plumbing, not the accuracy
HEAD = dict(h_fea_len=8, epochs=3, batch_size=16, random_state=0, n_threads=1)


@pytest.fixture(scope="module")
def data():
    return prototype_dataset()


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    """A 16-wide, 2-convolution encoder on the 92-dim CGCNN features, saved as a file."""
    torch.manual_seed(3)
    encoder = CGCNNEncoder(92, 16, 2, edge_dim=41)
    path = tmp_path_factory.mktemp("enc") / "tiny_encoder.pt"
    save_encoder(
        encoder, path, {"input_embedding": "cgcnn", "graph": GRAPH, "description": "tiny test"}
    )
    return path


def _encoder_state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.encoder.state_dict().items()}


def _file_state(path) -> dict[str, torch.Tensor]:
    from crysatom_featurizers.nn import load_encoder

    return load_encoder(path)[0].state_dict()


# ---- fine-tuning -------------------------------------------------------------------------------


def test_finetune_takes_architecture_and_input_from_the_file(data, encoder_file):
    X, y = data
    model = CGCNNRegressor(finetune=encoder_file, **HEAD).fit(X, y)
    assert model.model_.encoder.hidden_dim == 16 and model.model_.encoder.num_layers == 2
    assert model.embedding_name_ == "cgcnn" and model.embedding_dim_ == 92
    assert model.transfer_["mode"] == "finetune" and model.transfer_["hidden_dim"] == 16
    trained = _encoder_state(model.model_)
    start = _file_state(encoder_file)
    assert any(not torch.equal(trained[k], start[k]) for k in start)  # the encoder trained


def test_finetune_frozen_encoder_keeps_its_weights_and_statistics(data, encoder_file):
    X, y = data
    start = _file_state(encoder_file)
    frozen = CGCNNRegressor(finetune=encoder_file, freeze_encoder_epochs="all", **HEAD).fit(X, y)
    state = _encoder_state(frozen.model_)
    assert all(torch.equal(state[k], start[k]) for k in start)  # weights and BN statistics
    # frozen for exactly the epochs run: the same; one epoch fewer: changed
    same = CGCNNRegressor(finetune=encoder_file, freeze_encoder_epochs=3, **HEAD).fit(X, y)
    assert all(torch.equal(_encoder_state(same.model_)[k], start[k]) for k in start)
    thawed = CGCNNRegressor(finetune=encoder_file, freeze_encoder_epochs=2, **HEAD).fit(X, y)
    assert any(not torch.equal(_encoder_state(thawed.model_)[k], start[k]) for k in start)
    np.testing.assert_allclose(frozen.predict(X), same.predict(X), rtol=1e-5)
    assert (frozen.history_["val_mae"].notna()).all()


def test_finetune_encoder_learning_rate_applies_to_the_encoder_only(data, encoder_file):
    X, y = data
    start = _file_state(encoder_file)
    slow = CGCNNRegressor(finetune=encoder_file, encoder_lr=1e-12, **HEAD).fit(X, y)
    state = _encoder_state(slow.model_)
    weights = [k for k in start if "running" not in k and "num_batches" not in k]
    for k in weights:
        torch.testing.assert_close(state[k], start[k], atol=1e-8, rtol=0)
    same_lr = CGCNNRegressor(finetune=encoder_file, **HEAD).fit(X, y)
    assert any(not torch.equal(_encoder_state(same_lr.model_)[k], start[k]) for k in weights)
    assert not np.allclose(slow.predict(X), same_lr.predict(X))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"atom_fea_len": 32}, "atom_fea_len=16"),
        ({"n_conv": 3}, "n_conv=2"),
        ({"embedding": "random:8"}, "reads the 'cgcnn' element vectors"),
        ({"radius": 6.0}, "radius=8.0"),
        ({"max_neighbors": 8}, "max_neighbors=12"),
    ],
)
def test_finetune_incompatible_settings_are_clear_errors(data, encoder_file, params, message):
    X, y = data
    with pytest.raises(ValueError, match=message):
        CGCNNRegressor(finetune=encoder_file, **{**HEAD, **params}).fit(X, y)


def test_finetune_accepts_its_own_architecture_spelled_out(data, encoder_file):
    X, y = data
    model = CGCNNRegressor(
        "cgcnn", atom_fea_len=16, n_conv=2, finetune=str(encoder_file), **HEAD
    ).fit(X, y)
    assert model.model_.encoder.hidden_dim == 16


@pytest.mark.parametrize(
    "params, message",
    [
        ({"finetune": "x.pt", "distill": "x.pt"}, "alternatives"),
        ({"freeze_encoder_epochs": 2}, "apply to a fine-tuned encoder"),
        ({"encoder_lr": 1e-4}, "apply to a fine-tuned encoder"),
        ({"finetune": "x.pt", "freeze_encoder_epochs": "some"}, "'all'"),
        ({"finetune": "x.pt", "freeze_encoder_epochs": -1}, ">= 0"),
        ({"finetune": "x.pt", "encoder_lr": 0.0}, "encoder_lr must be a positive finite number"),
        ({"distill": "x.pt", "distill_delta": 1.5}, r"\(0, 1\]"),
        ({"distill": "x.pt", "distill_delta": 0}, "the head would never train"),
        ({"distill": "x.pt", "distill_layer": 2}, r"distill_layer must be in \[-2, 1\]"),
        ({"distill_delta": 0.3}, "apply to distillation"),
        ({"finetune": "x.pt", "encoder_lr": "1e-4"}, "encoder_lr must be a positive finite number"),
        ({"finetune": "x.pt", "encoder_lr": float("inf")}, "encoder_lr must be a positive finite"),
        ({"lr": float("inf")}, "lr must be a positive finite number"),
        ({"weight_decay": float("nan")}, "weight_decay must be a finite number >= 0"),
        ({"distill": "x.pt", "distill_layer": 0.5}, "distill_layer must be an integer"),
        ({"finetune": 3}, "finetune must be None"),
    ],
)
def test_bad_transfer_parameters_fail_before_reading_files(data, params, message):
    X, y = data
    with pytest.raises(ValueError, match=message):
        CGCNNRegressor("cgcnn", n_conv=1, **{**HEAD, **params}).fit(X, y)


def test_missing_or_corrupt_encoder_file(data, encoder_file, tmp_path):
    X, y = data
    with pytest.raises(FileNotFoundError, match="neither a shipped encoder"):
        CGCNNRegressor(finetune=tmp_path / "none.pt", **HEAD).fit(X, y)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(encoder_file.read_bytes()[:500])
    with pytest.raises(EncoderFileError, match="truncated or corrupt"):
        CGCNNRegressor("cgcnn", distill=broken, **HEAD).fit(X, y)


def test_finetuned_classifier(data, encoder_file):
    X, y = data
    labels = np.where(y > np.median(y), "large", "small")
    clf = CGCNNClassifier(finetune=encoder_file, freeze_encoder_epochs=1, **HEAD).fit(X, labels)
    assert clf.predict_proba(X).shape == (len(X), 2)
    assert clf.model_.encoder.hidden_dim == 16


# ---- distillation -------------------------------------------------------------------------------


def test_distill_with_delta_one_is_plain_training(data, encoder_file):
    X, y = data
    vanilla = CGCNNRegressor("cgcnn", atom_fea_len=8, n_conv=1, **HEAD).fit(X, y)
    kd_off = CGCNNRegressor(
        "cgcnn", atom_fea_len=8, n_conv=1, distill=encoder_file, distill_delta=1.0, **HEAD
    ).fit(X, y)
    np.testing.assert_allclose(kd_off.predict(X), vanilla.predict(X), rtol=1e-6)
    kd_on = CGCNNRegressor(
        "cgcnn", atom_fea_len=8, n_conv=1, distill=encoder_file, distill_delta=0.5, **HEAD
    ).fit(X, y)
    assert not np.allclose(kd_on.predict(X), vanilla.predict(X))
    assert type(kd_on.model_) is CGCNN  # the student alone; no teacher, no projection
    assert kd_on.transfer_["mode"] == "distill"
    # the student keeps its own architecture and vectors
    assert kd_on.model_.encoder.hidden_dim == 8 and kd_on.embedding_name_ == "cgcnn"


def test_distill_teacher_runs_once_per_fit(data, encoder_file, monkeypatch):
    import crysatom_featurizers.nn.transfer as transfer

    calls = []
    original = transfer.node_embeddings

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(transfer, "node_embeddings", counted)
    X, y = data
    CGCNNRegressor("random:8", atom_fea_len=8, n_conv=1, distill=encoder_file, **HEAD).fit(X, y)
    assert len(calls) == 1


def test_distilled_model_predicts_without_the_encoder_file(data, encoder_file, tmp_path):
    X, y = data
    path = tmp_path / "teacher.pt"
    path.write_bytes(encoder_file.read_bytes())
    model = CGCNNRegressor(
        "cgcnn", atom_fea_len=8, n_conv=1, distill=path, distill_layer=0, **HEAD
    ).fit(X, y)
    before = model.predict(X)
    path.unlink()
    joblib.dump(model, tmp_path / "m.joblib")
    loaded = joblib.load(tmp_path / "m.joblib")
    np.testing.assert_allclose(loaded.predict(X), before, rtol=1e-6)
    again = CGCNNRegressor(
        "cgcnn", atom_fea_len=8, n_conv=1, distill=encoder_file, distill_layer=0, **HEAD
    ).fit(X, y)
    np.testing.assert_allclose(again.predict(X), before, rtol=1e-6)  # random_state


def test_transfer_options_work_with_clone_pipeline_and_grid_search(data, encoder_file):
    X, y = data
    est = CGCNNRegressor("cgcnn", atom_fea_len=8, n_conv=1, distill=encoder_file, **HEAD)
    assert clone(est).get_params()["distill"] == encoder_file
    search = GridSearchCV(est, {"distill_delta": [0.5, 1.0]}, cv=2, error_score="raise")
    search.fit(X, y)
    assert search.best_params_["distill_delta"] in (0.5, 1.0)
    pipe = Pipeline([("cgcnn", CGCNNRegressor(finetune=encoder_file, **HEAD))]).fit(X, y)
    assert pipe.predict(X).shape == (len(X),)


def test_distilled_cgcnn_layer_out_of_range():
    student = CGCNN("cgcnn", atom_fea_len=4, n_conv=1, h_fea_len=4)
    with pytest.raises(ValueError, match=r"layer must be in \[-2, 1\]"):
        DistilledModel(student, teacher_dim=6, layer=2)
    with pytest.raises(ValueError, match=r"delta must be in \[0, 1\]"):
        DistilledModel(student, teacher_dim=6, delta=-0.1)


def test_thawed_encoder_gets_its_own_patience(data, encoder_file):
    X, y = data
    params = {**HEAD, "epochs": 20, "patience": 2}
    model = CGCNNRegressor(finetune=encoder_file, freeze_encoder_epochs=8, **params)
    model.fit(X[:24], y[:24], X_val=X[24:], y_val=y[24:])
    assert model.n_iter_ >= 8 + 2  # stopping waits for two epochs after the thaw


def test_frozen_encoder_freezes_trainable_element_vectors(data, encoder_file):
    X, y = data
    model = CGCNNRegressor(
        finetune=encoder_file, freeze_encoder_epochs="all", trainable_embeddings=True, **HEAD
    ).fit(X, y)
    start = CGCNN.from_encoder(_load(encoder_file), "cgcnn", trainable_embeddings=True)
    assert torch.equal(model.model_.embedding.weight, start.embedding.weight)
    thawed = CGCNNRegressor(
        finetune=encoder_file, encoder_lr=1e-12, trainable_embeddings=True, **HEAD
    ).fit(X, y)  # the table trains at the encoder's rate
    torch.testing.assert_close(
        thawed.model_.embedding.weight, start.embedding.weight, atol=1e-8, rtol=0
    )


def _load(path):
    from crysatom_featurizers.nn import load_encoder

    return load_encoder(path)[0]


# ---- nn modules ---------------------------------------------------------------------------------


def test_node_distillation_and_distilled_cgcnn(nacl, fe2o3):
    torch.manual_seed(0)
    graphs = structures_to_graphs([nacl, fe2o3], expand_edges=False)
    packed = PackedGraphs.from_graphs(graphs)
    teacher = CGCNN.from_encoder(CGCNNEncoder(92, 6, 1), "cgcnn")
    emb = node_embeddings(teacher, packed)
    assert emb.shape == (nacl.num_sites + fe2o3.num_sites, 6) and not emb.requires_grad
    batch = packed.batch(torch.tensor([1]))
    assert batch.node_targets is None
    student = CGCNN("cgcnn", atom_fea_len=4, n_conv=1, h_fea_len=4)
    model = DistilledModel(student, teacher_dim=6, delta=0.25)
    with pytest.raises(ValueError, match="node_targets"):
        model.training_loss(batch, torch.zeros(1, 1), torch.nn.MSELoss())
    packed.node_targets = emb
    batch = packed.batch(torch.tensor([1]))
    torch.testing.assert_close(batch.node_targets, emb[nacl.num_sites :])
    loss, out = model.training_loss(batch, torch.zeros(1, 1), torch.nn.MSELoss())
    kd = model.distillation(student.encode(batch), batch.node_targets)
    task = torch.nn.functional.mse_loss(out, torch.zeros(1, 1))
    torch.testing.assert_close(loss, 0.25 * task + 0.75 * kd)
    exact = NodeDistillation(3, 3)
    with torch.no_grad():
        exact.projection.weight.copy_(torch.eye(3))
        exact.projection.bias.zero_()
    h = torch.randn(5, 3)
    assert float(exact(h, h).detach()) == 0.0
    with pytest.raises(ValueError, match="5 and 4 nodes"):
        exact(h, h[:4])


def test_from_encoder_checks_input_and_edges():
    encoder = CGCNNEncoder(92, 6, 1)
    with pytest.raises(ValueError, match="92-dim element vectors"):
        CGCNN.from_encoder(encoder, "random:8")
    with pytest.raises(ValueError, match="41 Gaussian edge features"):
        CGCNN.from_encoder(encoder, "cgcnn", graph=CGCNN_GRAPH.replace(radius=6.0))
    with pytest.raises(TypeError, match="come from the encoder"):
        CGCNN.from_encoder(encoder, "cgcnn", atom_fea_len=8)
    model = CGCNN.from_encoder(encoder, "cgcnn")
    assert model.encoder is not encoder
    torch.testing.assert_close(model.encoder.input.weight, encoder.input.weight)


def test_an_encoder_file_naming_other_input_vectors_is_refused_by_name(tmp_path):
    import json

    from pymatgen.core import Lattice, Structure

    path = save_encoder(
        CGCNNEncoder(92, 6, 1), tmp_path / "enc.pt", {"input_embedding": "cgcnn", "graph": {}}
    )
    document = torch.load(path, weights_only=True)
    metadata = json.loads(document["metadata"])
    del metadata["content_checksum"]  # a format-1 file: its metadata is not checksummed
    metadata["input_embedding"] = "megnet16"
    document.update(format_version=1, metadata=json.dumps(metadata))
    torch.save(document, path)
    X = [
        Structure(Lattice.cubic(4.0 + 0.1 * i), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3])
        for i in range(4)
    ]
    for option in ("finetune", "distill"):
        est = CGCNNRegressor(**{option: path}, epochs=1, validation_fraction=0)
        with pytest.raises(ValueError, match=r"reads 92-dim .* names 'megnet16' \(16-dim\)"):
            est.fit(X, [1.0, 2.0, 3.0, 4.0])
