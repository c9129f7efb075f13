"""The base install (no torch) and the message when the [gnn] extra is missing."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import crysatom_featurizers
from crysatom_featurizers import deps


def _hide(monkeypatch, module: str) -> None:
    """Make ``deps`` see ``module`` as not installed."""
    real = importlib.import_module

    def fake(name, *args, **kwargs):
        if name == module:
            raise ModuleNotFoundError(f"No module named {module!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(deps.importlib, "import_module", fake)


def test_descriptors_do_not_import_torch():
    code = (
        "import sys\n"
        "from crysatom_featurizers.featurizers import CrysAtomCompositionFeaturizer\n"
        "import crysatom_featurizers.embeddings, crysatom_featurizers.chemistry\n"
        "x = CrysAtomCompositionFeaturizer().featurize('Fe2O3')\n"
        "assert len(x) == 1200 * 5, len(x)\n"
        "assert 'torch' not in sys.modules, 'the featurizers imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_gnn_extra_names_the_fix(monkeypatch):
    _hide(monkeypatch, "torch_geometric")
    with pytest.raises(deps.MissingGNNDependencyError, match=r"CGCNNRegressor needs .*\[gnn\]"):
        crysatom_featurizers.CGCNNRegressor  # noqa: B018
    with pytest.raises(ImportError, match="is not installed"):
        deps.require_gnn("CrystalGraphTransformer")


def test_gnn_extra_present_passes():
    pytest.importorskip("torch")
    deps.require_gnn("CGCNNRegressor")
    assert crysatom_featurizers.CGCNNRegressor.__name__ == "CGCNNRegressor"


def test_cli_train_without_gnn_extra_is_one_line(monkeypatch, tmp_path, capsys):
    from crysatom_featurizers import cli

    _hide(monkeypatch, "torch")
    code = cli.main(["train", str(tmp_path), "-o", str(tmp_path / "m.joblib")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1
    assert "crysatom train needs the optional GNN dependencies" in err[0]
    assert not (tmp_path / "m.joblib").exists()


def test_graph_classes_without_gnn_extra_name_the_fix(monkeypatch):
    import crysatom_featurizers.graphs as graphs

    _hide(monkeypatch, "torch")
    monkeypatch.delitem(graphs.__dict__, "CrystalGraphTransformer", raising=False)
    with pytest.raises(deps.MissingGNNDependencyError, match="graphs.CrystalGraphTransformer"):
        graphs.CrystalGraphTransformer  # noqa: B018
    assert graphs.CGCNN_GRAPH.radius == 8.0  # the settings need no torch
