"""Smoke tests of the scripts in examples/ (offline, small budgets)."""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

from crysatom_featurizers import datasets

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
REPO = EXAMPLES.parent


@pytest.fixture(scope="module")
def examples_frame():
    return datasets.load_example_structures()


@pytest.fixture
def run_example(monkeypatch, capsys, examples_frame):
    """Run ``examples/<name>`` as ``__main__`` with a tiny training budget; return its stdout."""
    monkeypatch.setattr(datasets, "load_example_structures", lambda: examples_frame.copy())
    monkeypatch.setenv("CRYSATOM_EXAMPLE_EPOCHS", "2")

    def run(name: str, *args: str) -> str:
        monkeypatch.setattr(sys, "argv", [str(EXAMPLES / name), *args])
        runpy.run_path(str(EXAMPLES / name), run_name="__main__")
        return capsys.readouterr().out

    return run


def test_quickstart(run_example, examples_frame):
    out = run_example("quickstart.py")
    n_sites = sum(len(s) for s in examples_frame["structure"])
    assert f"site level: {n_sites} sites" in out
    assert f"composition level: {len(examples_frame)} rows" in out
    match = re.search(r"cross-validated MAE ([\d.]+) .* vs ([\d.]+) for predicting the mean", out)
    assert match, out
    assert float(match.group(1)) > 0 and float(match.group(2)) > 0


@pytest.mark.gnn
def test_cgcnn_pipeline(run_example, tmp_path):
    out = run_example("cgcnn_pipeline.py", "--plot-dir", str(tmp_path))
    assert "best parameters: {'cgcnn__atom_fea_len'" in out
    assert re.search(r"test MAE [\d.]+ vs [\d.]+ for predicting the training mean", out), out
    for name in ("learning_curve.png", "parity.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_compare_embeddings(run_example):
    from crysatom_featurizers.embeddings import available

    out = run_example("compare_embeddings.py")
    generated = {name for name, dims in available()[["name", "dims"]].values if dims != []}
    for name in ("crysatom", "skipatom", "atom2vec", "random"):
        if name in generated:
            assert re.search(rf"^\s*{name}\s+\d+\s+\d+\s+[\d.]+$", out, re.MULTILINE), out
        else:
            assert f"skipping {name!r}" in out


@pytest.mark.gnn
def test_compare_embeddings_cgcnn_model(run_example, examples_frame):
    out = run_example("compare_embeddings.py", "--model", "cgcnn")
    assert f"cgcnn model, {len(examples_frame)} crystals" in out
    assert re.search(r"^\s*random\s+200\s+\d+\s+[\d.]+$", out, re.MULTILINE), out


def test_regenerate_vectors_points_to_existing_commands():
    text = (EXAMPLES / "regenerate_vectors.md").read_text()
    assert "training/regenerate_vectors.sh" in text
    script = REPO / "training" / "regenerate_vectors.sh"
    if not script.exists():
        pytest.skip("training/ is not part of this checkout")
    # Every python -m module named in the document exists in training/.
    for module in set(re.findall(r"python -m (training\.\w+)", text)):
        path = REPO / module.replace(".", "/")
        assert path.with_suffix(".py").exists() or (path / "__main__.py").exists(), module
    for config in re.findall(r"`(\w+)\.yaml`", text):
        assert (REPO / "training" / "configs" / f"{config}.yaml").exists(), config


@pytest.mark.gnn
def test_transfer_learning(run_example, tmp_path):
    plot = tmp_path / "parity.png"
    out = run_example("transfer_learning.py", "--plot", str(plot))
    assert "300 training, 60 validation, 60 test crystals" in out
    for label in ("vanilla", "vectors", r"transfer \(finetune\)"):
        assert re.search(rf"{label}\s+test MAE [\d.]+", out), out
    assert plot.stat().st_size > 0


@pytest.mark.gnn
def test_your_own_vectors(run_example, tmp_path):
    out_file = tmp_path / "mine.json"
    out = run_example("your_own_vectors.py", "--n", "42", "--out", str(out_file))
    assert "trained on 42 crystals" in out
    assert re.search(r"my_vectors: \d+ elements x 32 dims", out), out
    from crysatom_featurizers.embeddings import ElementEmbedding

    assert ElementEmbedding.from_json(out_file).dim == 32
    with pytest.raises(SystemExit):  # never overwrites
        run_example("your_own_vectors.py", "--out", str(out_file))
