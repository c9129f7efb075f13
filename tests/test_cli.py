"""Tests of the ``crysatom`` command line, mostly by calling ``main(argv)`` in-process."""

from __future__ import annotations

import errno
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition, Lattice, Structure

from crysatom_featurizers import cli, datasets
from crysatom_featurizers.embeddings import (
    DEFAULT_EMBEDDING,
    ElementEmbedding,
    load,
    vector_file_path,
)
from crysatom_featurizers.featurizers import (
    ElementEmbeddingCompositionFeaturizer,
    ElementEmbeddingSiteFeaturizer,
    ElementEmbeddingStructureFeaturizer,
)

CRYSATOM_SHIPPED = vector_file_path("crysatom", 200).exists()
needs_crysatom = pytest.mark.skipif(
    not CRYSATOM_SHIPPED, reason="crysatom_200.json not generated yet (training/ produces it)"
)
DEFAULT_SHIPPED = vector_file_path(DEFAULT_EMBEDDING, 256).exists()


@pytest.fixture(scope="module")
def examples() -> pd.DataFrame:
    return datasets.load_example_structures()


@pytest.fixture(autouse=True)
def cached_examples(monkeypatch, examples):
    """Build the example crystals once per module: the CLI would rebuild them on every call."""
    monkeypatch.setattr(datasets, "load_example_structures", lambda: examples.copy())


def run(argv, capsys) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(err: str, *fragments: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("crysatom: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def formula_csv(tmp_path) -> Path:
    path = tmp_path / "formulas.csv"
    pd.DataFrame(
        {"id": ["a", "b", "c", "d"], "formula": ["NaCl", "Fe2O3(", "Og2O", "SiO2"]}
    ).to_csv(path, index=False)
    return path


@pytest.fixture
def cif_folder(tmp_path, examples) -> Path:
    """Four example crystals as CIF files plus an id_prop.csv (target: volume per atom, Å³)."""
    folder = tmp_path / "cifs"
    folder.mkdir()
    lines = []
    for i, structure in enumerate(examples["structure"].iloc[:4]):
        structure.to(filename=str(folder / f"m{i}.cif"))
        lines.append(f"m{i},{structure.volume / len(structure):.5f}")
    (folder / "id_prop.csv").write_text("\n".join(lines) + "\n")
    return folder


# ------------------------------------------------------------------------------ featurize


def test_featurize_example_matches_library(tmp_path, capsys, examples):
    out = tmp_path / "example_features.csv"
    code, stdout, err = run(
        ["featurize", "--example", "-o", out, "--embedding", "skipatom"], capsys
    )
    assert code == 0, err
    # the CSV holds every digit: read exactly, it equals the library's values bit for bit
    table = pd.read_csv(out, float_precision="round_trip")
    featurizer = ElementEmbeddingCompositionFeaturizer("skipatom")
    labels = featurizer.feature_labels()
    assert list(table.columns) == ["id", "formula", *labels]
    assert list(table["id"]) == list(examples.index)
    expected = featurizer.featurize_many([s.composition for s in examples["structure"]], pbar=False)
    np.testing.assert_array_equal(table[labels].to_numpy(), np.asarray(expected))
    # The summary names the shape, the embedding and the output.
    assert f"{len(examples)} rows × {len(labels) + 2} columns" in stdout
    assert "skipatom (200-dim)" in stdout and str(out) in stdout


@pytest.mark.skipif(not DEFAULT_SHIPPED, reason="the default vectors are not generated yet")
def test_featurize_example_default_embedding(tmp_path, capsys, examples):
    out = tmp_path / "example_features.csv"
    code, stdout, err = run(["featurize", "--example", "-o", out], capsys)
    assert code == 0, err
    table = pd.read_csv(out)
    assert len(table) == len(examples) and len(table.columns) == 2 + 256 * 5
    assert "mean uae_0" in table.columns and "uae (256-dim)" in stdout


@pytest.mark.skipif(DEFAULT_SHIPPED, reason="the default vectors are shipped")
def test_featurize_default_embedding_missing_is_a_clear_error(tmp_path, capsys):
    code, _, err = run(["featurize", "--example", "-o", tmp_path / "x.csv"], capsys)
    assert code == 1
    assert_one_line_error(err, DEFAULT_EMBEDDING, "--embedding")


def test_featurize_without_input_uses_examples(tmp_path, capsys, examples):
    out = tmp_path / "f.csv"
    code, _, err = run(["featurize", "-o", out, "-e", "megnet16", "-q"], capsys)
    assert code == 0, err
    assert len(pd.read_csv(out)) == len(examples)


def test_featurize_site_level_parquet(tmp_path, capsys, examples):
    out = tmp_path / "sites.parquet"
    code, _, err = run(
        ["featurize", "--example", "-o", out, "--level", "site", "-e", "megnet16"], capsys
    )
    assert code == 0, err
    table = pd.read_parquet(out)
    n_sites = sum(len(s) for s in examples["structure"])
    assert len(table) == n_sites
    featurizer = ElementEmbeddingSiteFeaturizer("megnet16")
    assert list(table.columns[:4]) == ["id", "formula", "site_index", "species"]
    # Row of site 1 of the second crystal equals the library's vector for that site.
    structure = examples["structure"].iloc[1]
    row = table[(table["id"] == examples.index[1]) & (table["site_index"] == 1)]
    np.testing.assert_allclose(
        row[featurizer.feature_labels()].to_numpy()[0], featurizer.featurize(structure, 1)
    )


def test_featurize_structure_level_with_stats(tmp_path, capsys, examples):
    out = tmp_path / "s.csv"
    code, _, err = run(
        [
            "featurize",
            "--example",
            "-o",
            out,
            "--level",
            "structure",
            "-e",
            "megnet16",
            "--stats",
            "mean",
            "max",
        ],
        capsys,
    )
    assert code == 0, err
    table = pd.read_csv(out)
    featurizer = ElementEmbeddingStructureFeaturizer("megnet16", stats=("mean", "max"))
    assert list(table.columns) == ["id", "formula", *featurizer.feature_labels()]
    assert table.shape == (len(examples), 2 + 2 * 16)
    np.testing.assert_allclose(
        table[featurizer.feature_labels()].to_numpy()[3],
        featurizer.featurize(examples["structure"].iloc[3]),
    )


def test_featurize_bad_formula_row_is_one_line_error(tmp_path, capsys, formula_csv):
    code, stdout, err = run(
        ["featurize", formula_csv, "-o", tmp_path / "o.csv", "-e", "skipatom"], capsys
    )
    assert code == 1
    assert_one_line_error(err, "row 2 (id b)", "Fe2O3(", "--ignore-errors")
    assert not (tmp_path / "o.csv").exists()


def test_featurize_unknown_element_names_row_and_element(tmp_path, capsys):
    path = tmp_path / "f.csv"
    pd.DataFrame({"formula": ["NaCl", "SiO2", "OgO2"]}).to_csv(path, index=False)
    code, _, err = run(["featurize", path, "-o", tmp_path / "o.csv", "-e", "skipatom"], capsys)
    assert code == 1
    assert_one_line_error(err, "row 3", "Og", "skipatom")


def test_featurize_ignore_errors_writes_error_column(tmp_path, capsys, formula_csv):
    out = tmp_path / "o.csv"
    code, stdout, err = run(
        ["featurize", formula_csv, "-o", out, "-e", "skipatom", "--ignore-errors"], capsys
    )
    assert code == 0, err
    table = pd.read_csv(out)
    assert list(table["id"]) == ["a", "b", "c", "d"]
    assert table["error"].isna().tolist() == [True, False, False, True]
    assert "Fe2O3(" in table.loc[1, "error"] and "Og" in table.loc[2, "error"]
    labels = ElementEmbeddingCompositionFeaturizer("skipatom").feature_labels()
    assert table.loc[[1, 2], labels].isna().all().all()
    expected = ElementEmbeddingCompositionFeaturizer("skipatom").featurize(Composition("SiO2"))
    np.testing.assert_allclose(table.loc[3, labels].to_numpy(dtype=float), expected)
    assert "2 row(s) failed" in stdout


def test_featurize_cif_folder_reports_the_bad_file(tmp_path, capsys, cif_folder):
    (cif_folder / "broken.cif").write_text("data_broken\nthis is not a CIF\n")
    code, _, err = run(
        ["featurize", cif_folder, "-o", tmp_path / "o.csv", "-e", "skipatom"], capsys
    )
    assert code == 1
    assert_one_line_error(err, "(file broken.cif)", "cannot read CIF")
    out = tmp_path / "o.csv"
    code, _, err = run(
        ["featurize", cif_folder, "-o", out, "-e", "skipatom", "--ignore-errors", "-q"], capsys
    )
    assert code == 0, err
    table = pd.read_csv(out)
    assert sorted(table["id"]) == ["broken", "m0", "m1", "m2", "m3"]
    assert table.set_index("id")["error"].notna().to_dict()["broken"]


def test_featurize_csv_with_cif_column_and_json(tmp_path, capsys, examples):
    from matminer.utils.io import store_dataframe_as_json

    structures = list(examples["structure"].iloc[:3])
    csv_path = tmp_path / "cifs.csv"
    pd.DataFrame(
        {"material_id": ["x1", "x2", "x3"], "cif": [s.to(fmt="cif") for s in structures]}
    ).to_csv(csv_path, index=False)
    json_path = tmp_path / "data.json.gz"
    store_dataframe_as_json(
        pd.DataFrame({"structure": structures, "y": [1.0, 2.0, 3.0]}), str(json_path)
    )
    outputs = []
    for source in (csv_path, json_path):
        out = tmp_path / f"{source.name}.csv"
        code, _, err = run(
            ["featurize", source, "-o", out, "--level", "structure", "-e", "megnet16"], capsys
        )
        assert code == 0, err
        outputs.append(pd.read_csv(out))
    assert list(outputs[0]["id"]) == ["x1", "x2", "x3"]
    labels = ElementEmbeddingStructureFeaturizer("megnet16").feature_labels()
    np.testing.assert_allclose(outputs[0][labels], outputs[1][labels], rtol=1e-6)


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["featurize", "missing_folder", "-o", "{tmp}/o.csv"], "does not exist"),
        (["featurize", "--example", "-o", "{tmp}/o.txt"], ".csv"),
        (
            ["featurize", "{csv}", "-o", "{tmp}/o.csv", "--level", "site", "-e", "skipatom"],
            "structures",
        ),
        (
            ["featurize", "--example", "-o", "{tmp}/o.csv", "-e", "nosuchembedding"],
            "unknown embedding",
        ),
        (["embeddings", "show", "skipatom", "--dim", "50"], "dimension"),
    ],
)
def test_usage_errors_are_one_line(tmp_path, capsys, formula_csv, argv, fragment):
    argv = [a.format(tmp=tmp_path, csv=formula_csv) for a in argv]
    code, _, err = run(argv, capsys)
    assert code == 1
    assert_one_line_error(err, fragment)


def test_invalid_option_exits_2(tmp_path, capsys):
    code, _, err = run(["featurize", "--example", "-o", tmp_path / "o.csv", "--level", "x"], capsys)
    assert code == 2
    assert "invalid choice" in err


def test_bare_command_prints_help(capsys):
    code, out, _ = run([], capsys)
    assert code == 0 and "featurize" in out and "usage: crysatom" in out
    code, _, _ = run(["--quiet"], capsys)
    assert code == 2


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="unknown embedding"):
        cli.main(["--debug", "featurize", "--example", "-o", str(tmp_path / "o.csv"), "-e", "nope"])


def test_every_subcommand_help_has_examples(capsys, monkeypatch):
    commands = [
        ["featurize"],
        ["train"],
        ["predict"],
        ["plot-embedding"],
        ["embeddings"],
        ["embeddings", "list"],
        ["embeddings", "show"],
        ["embeddings", "export"],
        [],
    ]
    for command in commands:
        code, out, _ = run([*command, "--help"], capsys)
        assert code == 0
        assert "example" in out, command
    monkeypatch.setattr(cli, "_pretrain_location", lambda: None)
    code, out, _ = run(["pretrain", "--help"], capsys)
    assert code == 0 and "training.pretrain" in out


# ------------------------------------------------------------------------------ embeddings


def test_embeddings_list_and_show(capsys):
    code, out, _ = run(["embeddings", "list"], capsys)
    assert code == 0
    table, _, encoders = out.strip().partition("\n\n")
    names = [line.split()[0] for line in table.splitlines()[1:]]
    assert {"crysatom", "skipatom", "atom2vec", "random", "cgcnn"} <= set(names)
    assert encoders.startswith("encoders")
    code, out, _ = run(["embeddings", "show", "skipatom"], capsys)
    assert code == 0
    embedding = load("skipatom")
    assert f"checksum: {embedding.checksum}" in out
    assert f"coverage: {len(embedding)} elements" in out
    assert "Antunes" in out  # the citation


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_embeddings_export_round_trip(tmp_path, capsys, fmt):
    out = tmp_path / f"megnet.{fmt}"
    code, _, err = run(["embeddings", "export", "megnet16", "--format", fmt, "-o", out], capsys)
    assert code == 0, err
    original = load("megnet16")
    back = ElementEmbedding.from_csv(out) if fmt == "csv" else ElementEmbedding.from_json(out)
    assert back.symbols == original.symbols
    np.testing.assert_array_equal(back.vectors, original.vectors)


# ------------------------------------------------------------------------------ train / predict


@pytest.mark.gnn
def test_train_and_predict_cgcnn_folder(tmp_path, capsys, cif_folder, examples):
    from crysatom_featurizers.estimators import load_model

    model_path = tmp_path / "model.safetensors"
    code, out, err = run(
        [
            "train",
            cif_folder,
            "-o",
            model_path,
            "-e",
            "cgcnn",
            "--epochs",
            "2",
            "--atom-fea-len",
            "8",
            "--h-fea-len",
            "8",
            "--n-conv",
            "1",
            "--threads",
            "1",
            "--val-fraction",
            "0.25",
            "--plot-dir",
            tmp_path / "plots",
            "-q",
        ],
        capsys,
    )
    assert code == 0, err
    model = load_model(model_path)
    assert model.embedding_name_ == "cgcnn" and model.n_iter_ == 2
    assert (tmp_path / "plots" / "learning_curve.png").stat().st_size > 0

    code, out, err = run(
        [
            "train",
            cif_folder,
            "-o",
            model_path,
            "-e",
            "cgcnn",
            "--epochs",
            "1",
            "--atom-fea-len",
            "8",
            "--h-fea-len",
            "8",
            "--n-conv",
            "1",
        ],
        capsys,
    )
    assert code == 0, err
    assert "validation MAE:" in out and "saved model to" in out
    # 4 structures, validation_fraction 0.1: the estimator holds out one (at least one).
    assert "(best epoch 1 of 1; 3 training, 1 validation structures)" in out

    preds = tmp_path / "preds.csv"
    code, out, err = run(
        ["predict", model_path, cif_folder, "-o", preds, "--parity", tmp_path / "parity.png"],
        capsys,
    )
    assert code == 0, err
    table = pd.read_csv(preds)
    model = load_model(model_path)
    structures = list(examples["structure"].iloc[:4])
    np.testing.assert_allclose(table["prediction"], model.predict(structures), rtol=1e-5)
    volumes = [s.volume / len(s) for s in structures]
    np.testing.assert_allclose(table["target"], volumes, rtol=1e-4)
    assert "MAE against the given targets" in out
    assert (tmp_path / "parity.png").stat().st_size > 0


@pytest.mark.gnn
def test_train_without_id_prop_or_target_is_clear(tmp_path, capsys, cif_folder):
    (cif_folder / "id_prop.csv").unlink()
    code, _, err = run(["train", cif_folder, "-o", tmp_path / "m.joblib", "-e", "cgcnn"], capsys)
    assert code == 1
    assert_one_line_error(err, "id_prop.csv")


@pytest.mark.gnn
def test_predict_reports_uncovered_element_row(tmp_path, capsys, cif_folder):
    from crysatom_featurizers.estimators import CGCNNRegressor

    model = CGCNNRegressor(
        embedding="skipatom",
        atom_fea_len=8,
        h_fea_len=8,
        n_conv=1,
        epochs=1,
        validation_fraction=0,
        random_state=0,
        n_threads=1,
    )
    structures = [
        Structure(Lattice.cubic(4.0 + 0.2 * i), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        for i in range(4)
    ]
    model.fit(structures, [1.0, 2.0, 3.0, 4.0])
    model.save(tmp_path / "m.safetensors")
    Structure(Lattice.cubic(3.0), ["He"], [[0, 0, 0]]).to(filename=str(cif_folder / "m9.cif"))
    with open(cif_folder / "id_prop.csv", "a") as handle:
        handle.write("m9,1.0\n")
    code, _, err = run(
        ["predict", tmp_path / "m.safetensors", cif_folder, "-o", tmp_path / "p.csv"], capsys
    )
    assert code == 1
    assert_one_line_error(err, "row 5 (file m9.cif)", "He", "skipatom")
    code, _, err = run(
        [
            "predict",
            tmp_path / "m.safetensors",
            cif_folder,
            "-o",
            tmp_path / "p.csv",
            "--ignore-errors",
        ],
        capsys,
    )
    assert code == 0, err
    table = pd.read_csv(tmp_path / "p.csv")
    assert table["prediction"].isna().tolist() == [False] * 4 + [True]
    assert "He" in table.loc[4, "error"]


def test_predict_rejects_a_non_model_file(tmp_path, capsys, formula_csv, cif_folder):
    out = tmp_path / "p.csv"
    code, _, err = run(["predict", formula_csv, "--example", "-o", out], capsys)
    assert code == 1
    assert_one_line_error(err, "not a .safetensors model file", "--trust-pickle")
    argv = ["predict", formula_csv, "--example", "-o", out, "--trust-pickle"]
    code, _, err = run(argv, capsys)
    assert code == 1
    assert_one_line_error(err, "cannot load model")
    # the model forgotten: the data folder is taken as the model, and the error says so
    code, _, err = run(["predict", cif_folder, "-o", out], capsys)
    assert code == 1
    assert_one_line_error(err, "is data, not a model file", "the model file comes first")
    assert not out.exists()


@pytest.mark.gnn
def test_predict_refuses_a_crafted_pickle_without_running_it(tmp_path, capsys):
    marker = tmp_path / "ran"
    crafted = tmp_path / "model.joblib"
    joblib.dump(_Crafted(marker), crafted)
    out = tmp_path / "p.csv"
    code, _, err = run(["predict", crafted, "--example", "-o", out], capsys)
    assert code == 1
    assert_one_line_error(err, "can run any code", "--trust-pickle")
    assert not marker.exists() and not out.exists()
    # with the flag the user takes the risk: the payload runs, then it is no model
    code, _, err = run(["predict", crafted, "--example", "-o", out, "--trust-pickle"], capsys)
    assert code == 1 and marker.exists()
    assert_one_line_error(err, "not a fitted model")


class _Crafted:
    """A pickle payload: unpickling it creates a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# ------------------------------------------------------------------------------ plots, pretrain


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["--method", "tsne", "--color", "block"],
        ["--kind", "periodic-table"],
        ["--kind", "similarity"],
    ],
)
def test_plot_embedding_writes_png(tmp_path, capsys, extra):
    out = tmp_path / "plot.png"
    code, _, err = run(["plot-embedding", "megnet16", *extra, "-o", out], capsys)
    assert code == 0, err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_pretrain_without_checkout_is_a_clear_message(monkeypatch, capsys):
    monkeypatch.setattr(cli, "_pretrain_location", lambda: None)
    code, _, err = run(["pretrain", "--epochs", "1"], capsys)
    assert code == 1
    assert "training/" in err and "Traceback" not in err


def test_pretrain_forwards_arguments(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(cli, "_pretrain_location", lambda: tmp_path)
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd, **kw: calls.append((cmd, kw)) or 7)
    assert cli.main(["pretrain", "--config", "smoke", "--dim", "50"]) == 7
    command, kwargs = calls[0]
    assert command[1:] == ["-m", "training.pretrain", "--config", "smoke", "--dim", "50"]
    assert kwargs["cwd"] == tmp_path


# ------------------------------------------------------------------------------ console script


def test_console_script_runs_the_readme_command(tmp_path):
    """The installed ``crysatom`` script (or ``python -m crysatom_featurizers``) end to end."""
    script = shutil.which("crysatom", path=os.path.dirname(sys.executable))
    command = [script] if script else [sys.executable, "-m", "crysatom_featurizers"]
    embedding = [] if CRYSATOM_SHIPPED else ["--embedding", "skipatom"]
    out = tmp_path / "example_features.csv"
    result = subprocess.run(
        [*command, "featurize", "--example", "-o", str(out), *embedding],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    n_examples = len(datasets.EXAMPLE_PROTOTYPES)
    assert f"{n_examples} rows ×" in result.stdout
    assert len(pd.read_csv(out)) == n_examples
    bad = subprocess.run(
        [*command, "featurize", "missing.csv", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("crysatom: error:") and "Traceback" not in bad.stderr


# ------------------------------------------------------------------------------ input edge cases


def test_featurize_plain_pandas_json_matches_matminer_json(tmp_path, capsys, examples):
    from matminer.utils.io import store_dataframe_as_json

    structures = list(examples["structure"].iloc[:3])
    plain = tmp_path / "plain.json"
    pd.DataFrame(
        {"structure": [s.as_dict() for s in structures]}, index=["x1", "x2", "x3"]
    ).to_json(plain)
    matminer_json = tmp_path / "matminer.json"
    store_dataframe_as_json(pd.DataFrame({"structure": structures}), str(matminer_json), pbar=False)
    outputs = []
    for source in (plain, matminer_json):
        out = tmp_path / f"{source.stem}.csv"
        code, _, err = run(
            ["featurize", source, "-o", out, "--level", "structure", "-e", "megnet16", "-q"], capsys
        )
        assert code == 0, err
        assert err == ""  # no progress lines from the JSON decoding
        outputs.append(pd.read_csv(out))
    assert list(outputs[0]["id"]) == ["x1", "x2", "x3"]
    labels = ElementEmbeddingStructureFeaturizer("megnet16").feature_labels()
    np.testing.assert_allclose(outputs[0][labels], outputs[1][labels], rtol=1e-12)


def _series_json(path: Path) -> None:
    pd.Series([1.0, 2.0]).to_json(path)


def _frame_json_without_structures(path: Path) -> None:
    pd.DataFrame({"band_gap": [1.0, 2.0]}).to_json(path)


def _matminer_json_without_structures(path: Path) -> None:
    from matminer.utils.io import store_dataframe_as_json

    store_dataframe_as_json(pd.DataFrame({"band_gap": [1.0, 2.0]}), str(path), pbar=False)


@pytest.mark.parametrize(
    "write, fragments",
    [
        (_series_json, ["is not a table", "store_dataframe_as_json", "DataFrame.to_json", "CSV"]),
        (_frame_json_without_structures, ["needs a 'structure'", "'formula'", "band_gap"]),
        (_matminer_json_without_structures, ["needs a 'structure'", "band_gap"]),
    ],
)
def test_featurize_unusable_json_is_one_line(tmp_path, capsys, write, fragments):
    path = tmp_path / "in.json"
    write(path)
    out = tmp_path / "o.csv"
    code, _, err = run(["featurize", path, "-o", out, "-e", "skipatom"], capsys)
    assert code == 1
    # One line: no progress lines of the JSON reader around it.
    assert_one_line_error(err, str(path), *fragments)
    assert not out.exists()


def test_header_only_csv_is_an_error(tmp_path, capsys):
    path = tmp_path / "empty.csv"
    path.write_text("id,formula\n")
    out = tmp_path / "o.csv"
    code, _, err = run(["featurize", path, "-o", out, "-e", "skipatom"], capsys)
    assert code == 1
    assert_one_line_error(err, f"{path} has a header but no data rows")
    assert not out.exists()


@pytest.mark.gnn
def test_header_only_csv_is_an_error_for_train(tmp_path, capsys):
    path = tmp_path / "empty.csv"
    path.write_text("id,cif,y\n")
    code, _, err = run(
        ["train", path, "--target", "y", "-o", tmp_path / "m.joblib", "-e", "cgcnn"], capsys
    )
    assert code == 1
    assert_one_line_error(err, "no data rows")


@pytest.fixture
def constant_model(tmp_path) -> Path:
    """A joblib file holding a fitted model that predicts 3.0 for anything."""
    from sklearn.dummy import DummyRegressor

    path = tmp_path / "constant.joblib"
    joblib.dump(DummyRegressor().fit([[0.0], [1.0]], [2.0, 4.0]), path)
    return path


def test_predict_needs_data_or_example(tmp_path, capsys, constant_model, examples, cif_folder):
    out = tmp_path / "p.csv"
    code, _, err = run(["predict", constant_model, "-o", out], capsys)
    assert code == 1
    assert_one_line_error(err, "no DATA to predict", "--example")
    assert not out.exists()
    code, _, err = run(["predict", constant_model, cif_folder, "--example", "-o", out], capsys)
    assert code == 1
    assert_one_line_error(err, "give either DATA or --example, not both")
    code, _, err = run(
        ["predict", constant_model, "--example", "-o", out, "-q", "--trust-pickle"], capsys
    )
    assert code == 0, err
    table = pd.read_csv(out)
    assert list(table["id"]) == list(examples.index)
    assert (table["prediction"] == 3.0).all()


# ------------------------------------------------------------------------------ atomic outputs

EFBIG_TEXT = f"[Errno {errno.EFBIG}] {os.strerror(errno.EFBIG)}"


def fail_after_partial_output(value, handle, *args, **kwargs) -> None:
    """Stand-in for ``joblib.dump(value, handle)``, ``DataFrame.to_csv(self, handle)`` and
    ``Figure.savefig(self, handle)``: some bytes reach the file, then the size limit is hit."""
    handle.write(b"partial output")
    handle.flush()
    raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))


TRAIN_OPTIONS = ["-e", "cgcnn", "--epochs", "1", "--atom-fea-len", "8", "--h-fea-len", "8"]
TRAIN_OPTIONS += ["--n-conv", "1", "--threads", "1", "--val-fraction", "0.25", "-q"]


def run_with_file_size_limit(argv: list, limit: int, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m crysatom_featurizers ARGV`` in a process that may write ``limit`` bytes per file."""

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    repo = str(Path(__file__).resolve().parents[1])
    pythonpath = os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "crysatom_featurizers", *[str(a) for a in argv]],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        preexec_fn=small_files,
        env={**os.environ, "PYTHONPATH": pythonpath},
    )


def test_featurize_failed_write_keeps_previous_output(tmp_path, capsys, monkeypatch):
    out = tmp_path / "features.csv"
    code, _, err = run(["featurize", "--example", "-o", out, "-e", "megnet16", "-q"], capsys)
    assert code == 0, err
    before = out.read_bytes()
    from crysatom_featurizers.io import outputs

    monkeypatch.setattr(
        outputs,
        "_write_csv",
        lambda frame, handle, progress: fail_after_partial_output(frame, handle),
    )
    code, _, err = run(["featurize", "--example", "-o", out, "-e", "skipatom"], capsys)
    assert code == 1
    assert_one_line_error(err, f"cannot write {out}: {EFBIG_TEXT}")
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["features.csv"]  # no temporary file left


def test_featurize_at_the_file_size_limit_keeps_previous_output(tmp_path, capsys):
    out = tmp_path / "features.csv"
    code, _, err = run(["featurize", "--example", "-o", out, "-e", "megnet16", "-q"], capsys)
    assert code == 0, err
    before = out.read_bytes()
    # The skipatom features (200-dim, five statistics) are far larger than the limit.
    result = run_with_file_size_limit(
        ["featurize", "--example", "-o", out, "-e", "skipatom"], len(before) + 1024, tmp_path
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == f"crysatom: error: cannot write {out}: {EFBIG_TEXT}"
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["features.csv"]


@pytest.mark.slow
@pytest.mark.gnn
def test_train_failed_write_keeps_previous_model(tmp_path, capsys, monkeypatch, cif_folder):
    model_path = tmp_path / "model.joblib"
    code, _, err = run(["train", cif_folder, "-o", model_path, *TRAIN_OPTIONS], capsys)
    assert code == 0, err
    before = model_path.read_bytes()
    monkeypatch.setattr(joblib, "dump", fail_after_partial_output)
    code, _, err = run(["train", cif_folder, "-o", model_path, *TRAIN_OPTIONS], capsys)
    assert code == 1
    assert_one_line_error(err, f"cannot write {model_path}: {EFBIG_TEXT}")
    monkeypatch.undo()
    assert model_path.read_bytes() == before
    assert joblib.load(model_path).n_iter_ == 1  # still loads: no truncated pickle
    # A real file-size limit in a separate process: the model file is larger than 4 KiB.
    result = run_with_file_size_limit(
        ["train", cif_folder, "-o", model_path, *TRAIN_OPTIONS], 4096, tmp_path
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == f"crysatom: error: cannot write {model_path}: {EFBIG_TEXT}"
    assert model_path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifs", "model.joblib"]


def test_failed_figure_and_vector_writes_keep_previous_files(tmp_path, capsys, monkeypatch):
    from matplotlib.figure import Figure

    png = tmp_path / "map.png"
    vectors = tmp_path / "megnet.json"
    for argv in (
        ["plot-embedding", "megnet16", "-o", png],
        ["embeddings", "export", "megnet16", "-o", vectors],
    ):
        code, _, err = run(argv, capsys)
        assert code == 0, err
    before = {path: path.read_bytes() for path in (png, vectors)}
    monkeypatch.setattr(Figure, "savefig", fail_after_partial_output)
    code, _, err = run(["plot-embedding", "megnet16", "--kind", "similarity", "-o", png], capsys)
    assert code == 1
    assert_one_line_error(err, f"cannot write {png}: {EFBIG_TEXT}")

    def too_large(fd: int) -> None:  # the vectors are in the temporary file by now
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))

    monkeypatch.setattr(os, "fsync", too_large)
    code, _, err = run(["embeddings", "export", "skipatom", "-o", vectors], capsys)
    assert code == 1
    assert_one_line_error(err, f"cannot write {vectors}: {EFBIG_TEXT}")
    monkeypatch.undo()
    assert {path: path.read_bytes() for path in (png, vectors)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.png", "megnet.json"]


# ------------------------------------------------------------------------------ transfer


@pytest.fixture
def tiny_encoder(tmp_path) -> Path:
    """A 12-wide, 1-convolution encoder on the CGCNN features, saved as an encoder file."""
    import torch

    from crysatom_featurizers.graphs import CGCNN_GRAPH
    from crysatom_featurizers.nn import CGCNNEncoder, save_encoder

    torch.manual_seed(0)
    graph = {
        "radius": CGCNN_GRAPH.radius,
        "max_neighbors": CGCNN_GRAPH.max_neighbors,
        "gaussian_step": CGCNN_GRAPH.gaussian_step,
        "gaussian_width": CGCNN_GRAPH.gaussian_width,
    }
    path = tmp_path / "encoder.pt"
    save_encoder(CGCNNEncoder(92, 12, 1), path, {"input_embedding": "cgcnn", "graph": graph})
    return path


TRAIN_SMALL = ["--epochs", "2", "--h-fea-len", "8", "--threads", "1", "--val-fraction", "0.25"]


@pytest.mark.gnn
def test_train_finetune_and_distill(tmp_path, capsys, cif_folder, tiny_encoder):
    model_path = tmp_path / "ft.joblib"
    args = ["train", cif_folder, "-o", model_path, *TRAIN_SMALL, "--finetune", tiny_encoder]
    code, out, err = run([*args, "--freeze-encoder-epochs", "1"], capsys)
    assert code == 0, err
    assert "fine-tuned from" in out and "12-wide, 1 convolutions" in out
    model = joblib.load(model_path)
    assert model.embedding_name_ == "cgcnn" and model.model_.encoder.hidden_dim == 12
    assert model.freeze_encoder_epochs == 1 and model.transfer_["mode"] == "finetune"

    kd_path = tmp_path / "kd.joblib"
    code, out, err = run(
        ["train", cif_folder, "-o", kd_path, *TRAIN_SMALL, "-e", "cgcnn", "--atom-fea-len", "8",
         "--n-conv", "1", "--distill", tiny_encoder, "--distill-delta", "0.3"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    model = joblib.load(kd_path)
    assert "distilled from" in out and model.distill_delta == 0.3
    assert model.model_.encoder.hidden_dim == 8


@pytest.mark.gnn
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--atom-fea-len", "16"], "--atom-fea-len 12"),
        (["--freeze-encoder-epochs", "x"], "integer >= 0 or 'all'"),
        (["-e", "random"], "reads the 'cgcnn' element vectors"),
    ],
)
def test_train_finetune_errors_are_one_line(
    tmp_path, capsys, cif_folder, tiny_encoder, extra, message
):
    args = ["train", cif_folder, "-o", tmp_path / "m.joblib", *TRAIN_SMALL]
    code, out, err = run([*args, "--finetune", tiny_encoder, *extra], capsys)
    assert code != 0
    assert_one_line_error(err, message)


@pytest.mark.gnn
def test_train_finetune_and_distill_are_exclusive(tmp_path, capsys, cif_folder, tiny_encoder):
    args = ["train", cif_folder, "-o", tmp_path / "m.joblib", "--finetune", "crysatom"]
    code, out, err = run([*args, "--distill", "crysatom"], capsys)
    assert code == 2 and "not allowed with argument --finetune" in err


# ------------------------------------------------------------------------------ no lost inputs


def test_output_that_is_an_input_is_refused_before_any_work(tmp_path, capsys, formula_csv):
    before = formula_csv.read_bytes()
    code, _, err = run(["featurize", formula_csv, "-o", formula_csv, "-e", "skipatom"], capsys)
    assert code == 1
    assert_one_line_error(err, "is the input", "choose another -o")
    # the same file through another spelling of its path
    other = tmp_path / "sub" / ".." / formula_csv.name
    (tmp_path / "sub").mkdir()
    code, _, err = run(["featurize", other, "-o", formula_csv, "-e", "skipatom"], capsys)
    assert code == 1
    assert_one_line_error(err, "is the input")
    assert formula_csv.read_bytes() == before


def test_predict_output_that_is_the_data_or_id_prop_is_refused(tmp_path, capsys, cif_folder):
    id_prop = cif_folder / "id_prop.csv"
    before = id_prop.read_bytes()
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"\0" * 16)  # never read: the output check comes first
    code, _, err = run(["predict", model, cif_folder, "-o", id_prop], capsys)
    assert code == 1
    assert_one_line_error(err, "is the input", "id_prop.csv")
    assert id_prop.read_bytes() == before


@pytest.fixture
def six_cifs(tmp_path, examples) -> Path:
    """Six example crystals and an id_prop.csv whose rows 2 and 5 have bad targets."""
    folder = tmp_path / "six"
    folder.mkdir()
    lines = []
    for i, structure in enumerate(examples["structure"].iloc[:6]):
        structure.to(filename=str(folder / f"c{i}.cif"))
        value = {1: "abc", 4: "inf"}.get(i, f"{structure.volume / len(structure):.4f}")
        lines.append(f"c{i},{value}")
    (folder / "id_prop.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.gnn
def test_bad_targets_name_their_rows(tmp_path, capsys, six_cifs):
    model = tmp_path / "m.safetensors"
    code, _, err = run(["train", six_cifs, "-o", model, *TRAIN_OPTIONS[:-1]], capsys)
    assert code == 1
    assert_one_line_error(err, "row 2 (file c1.cif)", "target 'abc' is not a number", "1 more")
    assert not model.exists()
    options = [*TRAIN_OPTIONS[:-1], "--val-fraction", "0.25", "--ignore-errors"]
    code, out, err = run(["train", six_cifs, "-o", model, *options], capsys)
    assert code == 0, err
    assert "skipping 2 row(s)" in out and "ids c1, c4" in out
    from crysatom_featurizers.estimators import load_model

    assert load_model(model).n_iter_ == 1


@pytest.mark.gnn
def test_conflicting_duplicate_ids_and_a_too_large_test_fraction(tmp_path, capsys, cif_folder):
    id_prop = cif_folder / "id_prop.csv"
    lines = id_prop.read_text().splitlines()
    id_prop.write_text("\n".join([*lines, "m0,99.0", lines[1]]) + "\n")  # m1 twice, same value
    model = tmp_path / "m.safetensors"
    code, _, err = run(["train", cif_folder, "-o", model, *TRAIN_OPTIONS], capsys)
    assert code == 1
    assert_one_line_error(err, "1 id(s) occur more than once with different targets: m0")
    id_prop.write_text("\n".join(lines) + "\n")
    code, _, err = run(
        ["train", cif_folder, "-o", model, *TRAIN_OPTIONS, "--test-fraction", "0.99"], capsys
    )
    assert code == 1
    assert_one_line_error(err, "--test-fraction 0.99 holds out", "lower it")
    assert not model.exists()


@pytest.mark.gnn
def test_train_checkpoint_resumes_and_refuses_another_fit(tmp_path, capsys, cif_folder):
    from crysatom_featurizers.estimators import load_model

    model, ckpt = tmp_path / "m.safetensors", tmp_path / "fit.ckpt"
    argv = ["train", cif_folder, "-o", model, "--checkpoint", ckpt, *TRAIN_OPTIONS]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    assert ckpt.exists()
    first = load_model(model).model_.state_dict()
    code, _, err = run(argv, capsys)  # the finished fit resumes to its end: the same model
    assert code == 0, err
    again = load_model(model).model_.state_dict()
    assert all(torch_equal(first[k], again[k]) for k in first)
    code, _, err = run([*argv, "--lr", "0.01"], capsys)
    assert code == 1
    assert_one_line_error(err, "belongs to another run")
    argv = ["train", cif_folder, "-o", model, "--checkpoint", model, *TRAIN_OPTIONS]
    code, _, err = run(argv, capsys)
    assert code == 1
    assert_one_line_error(err, "--checkpoint", "is the -o model file")


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


@pytest.mark.gnn
def test_train_errors_speak_in_flags(tmp_path, capsys, cif_folder, tiny_encoder):
    model = tmp_path / "m.safetensors"
    argv = ["train", cif_folder, "-o", model, *TRAIN_SMALL, "--finetune", tiny_encoder]
    code, _, err = run([*argv, "--atom-fea-len", "8"], capsys)
    assert code == 1
    assert_one_line_error(err, "has --atom-fea-len 12", "leave --atom-fea-len unset")
    code, _, err = run(["train", cif_folder, "-o", model, *TRAIN_OPTIONS, "--lr", "inf"], capsys)
    assert code == 1
    assert_one_line_error(err, "--lr must be a positive finite number, got inf")
    assert "atom_fea_len" not in err and not model.exists()


def test_a_bad_parity_path_fails_before_predicting(tmp_path, capsys, constant_model):
    out = tmp_path / "p.csv"
    (tmp_path / "plots").mkdir()
    argv = ["predict", constant_model, "--example", "-o", out, "--trust-pickle"]
    code, _, err = run([*argv, "--parity", tmp_path / "plots"], capsys)
    assert code == 1 and "crysatom: error: " in err
    assert not out.exists()
    code, _, err = run([*argv, "--parity", out], capsys)
    assert code == 1
    assert not out.exists()


@pytest.mark.gnn
def test_a_model_saved_by_train_loads_in_a_fresh_process_without_unpickling(
    tmp_path, capsys, cif_folder
):
    import subprocess
    import sys

    model = tmp_path / "m.safetensors"
    code, _, err = run(["train", cif_folder, "-o", model, *TRAIN_OPTIONS], capsys)
    assert code == 0, err
    check = f"""
import sys

def audit(event, args):
    if event == "pickle.find_class":  # every unpickled object that is not plain data
        raise AssertionError(f"unpickling {{args}}")

sys.addaudithook(audit)
import torch
torch.load = None  # not even weights-only loading
from crysatom_featurizers.estimators import load_model
from crysatom_featurizers.io import read_cif_folder

table = read_cif_folder({str(cif_folder)!r})
print(load_model({str(model)!r}).predict(list(table.frame["structure"])).shape)
"""
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", check], cwd=repo, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(4,)"


@pytest.mark.gnn
def test_train_and_predict_alignn(tmp_path, capsys, cif_folder):
    from crysatom_featurizers.estimators import load_model

    model_path = tmp_path / "alignn.safetensors"
    code, out, err = run(
        ["train", cif_folder, "-o", model_path, "--model", "alignn", "-e", "cgcnn",
         "--epochs", "2", "--threads", "1", "--val-fraction", "0.25", "-q"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    model = load_model(model_path)
    assert type(model).__name__ == "ALIGNNRegressor" and model.preset == "cpu"
    code, out, err = run(["predict", model_path, cif_folder, "-o", tmp_path / "p.csv"], capsys)
    assert code == 0, err
    assert len(pd.read_csv(tmp_path / "p.csv")) == 4


@pytest.mark.gnn
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "alignn", "--finetune", "crysatom"], "--finetune do(es) not apply"),
        (["--model", "alignn", "--n-conv", "2"], "--n-conv do(es) not apply to --model alignn"),
        (["--preset", "paper"], "--preset do(es) not apply to --model cgcnn"),
    ],
)
def test_train_model_options_that_do_not_apply_are_refused(
    tmp_path, capsys, cif_folder, extra, message
):
    code, _, err = run(["train", cif_folder, "-o", tmp_path / "m.safetensors", *extra], capsys)
    assert code == 1
    assert_one_line_error(err, message)


# ------------------------------------------------------------------ checks before the work


@pytest.mark.gnn
def test_train_refuses_before_the_fit(tmp_path, capsys, cif_folder):
    notes = tmp_path / "notes.safetensors"
    notes.write_text("my notes")
    other = tmp_path / "other.joblib"
    joblib.dump({"not": "a model"}, other)
    a_file = tmp_path / "plots.png"
    a_file.write_text("x")
    cases = [
        (["-o", notes], "-o " + str(notes) + " exists and is not a crysatom-featurizers model"),
        (["-o", other], "is not a crysatom-featurizers model file; not replacing it"),
        (["-o", tmp_path / "m.safetensors", "--plot-dir", a_file], "--plot-dir"),
        (
            ["-o", tmp_path / "m.safetensors", "--checkpoint", cif_folder / "id_prop.csv"],
            "(--checkpoint) is the input",
        ),
        (
            ["-o", tmp_path / "m.safetensors", "--checkpoint", tmp_path / "m.safetensors"],
            "--checkpoint " + str(tmp_path / "m.safetensors") + " is the -o model file",
        ),
        (
            ["-o", tmp_path / "m.safetensors", "--patience", "5", "--val-fraction", "0"],
            "--patience stops on the validation error: set --val-fraction > 0",
        ),
        (["-o", tmp_path / "m.safetensors", "--model", "nope"], "--model: unknown network"),
    ]
    for extra, message in cases:
        code, out, err = run(["train", cif_folder, *TRAIN_SMALL, *extra], capsys)
        assert code == 1, (extra, err)
        assert_one_line_error(err, message)
        assert "MAE" not in out  # refused before any fit
    assert notes.read_text() == "my notes" and joblib.load(other) == {"not": "a model"}


def test_output_under_a_file_is_refused_with_its_name(tmp_path, capsys):
    a_file = tmp_path / "table.csv"
    a_file.write_text("x")
    code, _, err = run(["featurize", "--example", "-o", a_file / "out.csv"], capsys)
    assert code == 1
    assert_one_line_error(err, f"{a_file} is a file, not a folder")


@pytest.mark.gnn
def test_predict_checks_before_predicting(tmp_path, capsys, cif_folder, examples):
    from crysatom_featurizers.estimators import CGCNNClassifier, CGCNNRegressor

    X = list(examples["structure"].iloc[:8])
    volume = np.array([s.volume / len(s) for s in X])
    tiny = dict(embedding="cgcnn", atom_fea_len=8, n_conv=1, epochs=1, random_state=0)
    regressor = CGCNNRegressor(**tiny, validation_fraction=0).fit(X, volume)
    model = regressor.save(tmp_path / "reg.safetensors")
    (tmp_path / "plain").mkdir()
    for i, s in enumerate(X[:3]):
        s.to(filename=str(tmp_path / "plain" / f"s{i}.cif"))
    out = tmp_path / "p.csv"
    code, _, err = run(
        ["predict", model, tmp_path / "plain", "-o", out, "--parity", tmp_path / "pp.png"], capsys
    )
    assert code == 1 and not out.exists()  # refused before any prediction was written
    assert_one_line_error(err, "--parity needs targets")
    labels = np.where(volume > np.median(volume), "large", "small")
    classifier = CGCNNClassifier(**tiny, validation_fraction=0).fit(X, labels)
    clf = classifier.save(tmp_path / "clf.safetensors")
    code, _, err = run(["predict", clf, cif_folder, "-o", out, "--ignore-errors"], capsys)
    assert code == 1 and not out.exists()
    assert_one_line_error(err, "holds a CGCNNClassifier", "predict classes in Python")


@pytest.mark.gnn
def test_train_drops_repeated_lines_and_names_isolated_sites_by_id(tmp_path, capsys, cif_folder):
    lines = (cif_folder / "id_prop.csv").read_text().splitlines()
    (cif_folder / "id_prop.csv").write_text("\n".join([*lines, lines[0]]) + "\n")
    code, out, err = run(
        ["train", cif_folder, "-o", tmp_path / "m.safetensors", *TRAIN_SMALL], capsys
    )
    assert code == 0, err
    assert "note: 1 repeated line(s) of an id with the same target dropped (m0)" in out
    lonely = Structure(Lattice.cubic(9.0), ["Cu"], [[0, 0, 0]])
    lonely.to(filename=str(cif_folder / "lonely.cif"))
    (cif_folder / "id_prop.csv").write_text("\n".join([*lines, "lonely,11.0"]) + "\n")
    argv = ["train", cif_folder, "-o", tmp_path / "m2.safetensors", *TRAIN_SMALL]
    code, _, err = run(argv, capsys)
    assert code == 1
    assert_one_line_error(err, "'lonely'", "--allow-isolated")
    assert "allow_isolated" not in err
    code, _, err = run([*argv, "--allow-isolated"], capsys)
    assert code == 0, err


@pytest.mark.gnn
def test_train_takes_the_alignn_papers_recipe(tmp_path, capsys, cif_folder):
    from crysatom_featurizers.estimators import load_model

    model = tmp_path / "m.safetensors"
    recipe = ["--optimizer", "adamw", "--weight-decay", "1e-5", "--lr-schedule", "onecycle"]
    code, _, err = run(["train", cif_folder, "-o", model, *TRAIN_SMALL, *recipe], capsys)
    assert code == 0, err
    loaded = load_model(model)
    assert (loaded.optimizer, loaded.weight_decay, loaded.lr_schedule) == (
        "adamw",
        1e-5,
        "onecycle",
    )
    code, _, err = run(
        ["train", cif_folder, "-o", model, *TRAIN_SMALL, *recipe, "--warmup-epochs", "1"], capsys
    )
    assert code == 1
    assert_one_line_error(err, "--lr-schedule 'onecycle' has its own warm-up", "--warmup-epochs")
