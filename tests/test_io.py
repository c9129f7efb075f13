"""Tests of crysatom_featurizers.io: atomic writes, output writers and input readers."""

from __future__ import annotations

import errno
import gzip
import json
import os
import resource
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition, Structure

from crysatom_featurizers import io
from crysatom_featurizers.embeddings import ElementEmbedding
from crysatom_featurizers.io import FileWriteError, atomic_write

REPO = Path(__file__).resolve().parents[1]
EFBIG_TEXT = f"[Errno {errno.EFBIG}] {os.strerror(errno.EFBIG)}"


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    """Files in ``folder`` other than ``keep``: temporary files a write left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def fail_after_partial_output(handle, data: bytes | str = b"partial") -> None:
    """Write something, then fail as a write past the file-size limit does."""
    handle.write(data)
    handle.flush()
    raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))


# ------------------------------------------------------------------------------ atomic_write


def test_atomic_write_text_bytes_and_handle(tmp_path):
    assert io.atomic_write_text(tmp_path / "a.txt", "héllo\n") == tmp_path / "a.txt"
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    io.atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    with atomic_write(tmp_path / "c.txt") as handle:
        handle.write("one\n")
        handle.write("two\n")
        assert not (tmp_path / "c.txt").exists()  # nothing at the final name until the end
    assert (tmp_path / "c.txt").read_text() == "one\ntwo\n"
    assert leftovers(tmp_path, {"a.txt", "b.bin", "c.txt"}) == []


def test_atomic_write_creates_parent_folders(tmp_path):
    path = tmp_path / "x" / "y" / "z.txt"
    io.atomic_write_text(path, "ok")
    assert path.read_text() == "ok"


@pytest.mark.parametrize("mode", ["a", "r", "w+", "x", "ab"])
def test_atomic_write_rejects_other_modes(tmp_path, mode):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "f", mode):
            pass
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_file_and_names_the_path(tmp_path):
    path = tmp_path / "out.csv"
    path.write_bytes(b"a,b\n1,2\n")
    with pytest.raises(FileWriteError) as info:
        with atomic_write(path, "wb") as handle:
            fail_after_partial_output(handle)
    error = info.value
    assert str(error) == f"cannot write {path}: {EFBIG_TEXT}"
    assert isinstance(error, OSError) and error.errno == errno.EFBIG
    assert error.filename == str(path)
    assert path.read_bytes() == b"a,b\n1,2\n"
    assert leftovers(tmp_path, {"out.csv"}) == []


def test_failed_write_of_a_new_file_leaves_nothing(tmp_path):
    with pytest.raises(FileWriteError, match="cannot write .*new.txt"):
        with atomic_write(tmp_path / "new.txt") as handle:
            fail_after_partial_output(handle, "partial")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("exception", [ValueError("bad value"), KeyboardInterrupt()])
def test_other_exceptions_propagate_unchanged_and_clean_up(tmp_path, exception):
    path = tmp_path / "keep.txt"
    path.write_text("previous")
    with pytest.raises(type(exception)) as info:
        with atomic_write(path) as handle:
            handle.write("new")
            raise exception
    assert info.value is exception
    assert path.read_text() == "previous"
    assert leftovers(tmp_path, {"keep.txt"}) == []


def test_failure_in_fsync_or_rename_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "v.json"
    path.write_text("previous")

    def no_space(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(FileWriteError, match=r"cannot write .*v.json: \[Errno 28\]"):
        io.atomic_write_text(path, "new")
    monkeypatch.undo()
    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(FileWriteError):
        io.atomic_write_text(path, "new")
    assert path.read_text() == "previous"
    assert leftovers(tmp_path, {"v.json"}) == []


def test_unwritable_location_is_one_line_naming_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    target = blocker / "out.csv"  # a folder that is a file
    with pytest.raises(FileWriteError) as info:
        io.atomic_write_text(target, "x")
    assert str(info.value).startswith(f"cannot write {target}: [Errno ")
    assert "\n" not in str(info.value)


def test_permissions_of_replaced_and_new_files(tmp_path):
    path = tmp_path / "private.txt"
    path.write_text("old")
    path.chmod(0o600)
    io.atomic_write_text(path, "new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    umask = os.umask(0o022)
    os.umask(umask)
    fresh = io.atomic_write_text(tmp_path / "fresh.txt", "x")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask


def test_symlink_target_is_replaced_and_link_kept(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    io.atomic_write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


def test_file_size_limit_in_a_subprocess_keeps_previous_file(tmp_path):
    """A real EFBIG: the child process may write at most 4 KiB per file."""
    path = tmp_path / "big.bin"
    path.write_bytes(b"good previous content")
    script = textwrap.dedent(
        f"""
        from crysatom_featurizers.io import atomic_write_bytes
        try:
            atomic_write_bytes({str(path)!r}, b"x" * 1_000_000)
        except OSError as exc:
            print(exc)
        """
    )
    limit = 4096

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=small_files,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.stdout.strip() == f"cannot write {path}: {EFBIG_TEXT}", result.stderr
    assert path.read_bytes() == b"good previous content"
    assert leftovers(tmp_path, {"big.bin"}) == []


# ------------------------------------------------------------------------------ writers


def small_frame() -> pd.DataFrame:
    return pd.DataFrame({"id": ["a", "b"], "x": [1.5, -2.0]})


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "t.parquet", "t.pq"])
def test_write_table_formats(tmp_path, name):
    path = io.write_table(small_frame(), tmp_path / name)
    back = pd.read_parquet(path) if name.endswith(("parquet", "pq")) else pd.read_csv(path)
    pd.testing.assert_frame_equal(back, small_frame())
    assert leftovers(tmp_path, {name}) == []


def test_write_table_gzip_is_reproducible(tmp_path):
    first = io.write_table(small_frame(), tmp_path / "a.csv.gz").read_bytes()
    second = io.write_table(small_frame(), tmp_path / "b.csv.gz").read_bytes()
    assert first == second and gzip.decompress(first).startswith(b"id,x\n")


def test_write_table_failure_keeps_previous_file(tmp_path, monkeypatch):
    path = io.write_table(small_frame(), tmp_path / "f.csv")
    before = path.read_bytes()

    def partial_to_csv(self, handle, **kwargs):
        fail_after_partial_output(handle, b"id,x\n1")

    monkeypatch.setattr(pd.DataFrame, "to_csv", partial_to_csv)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # the pandas writer
    with pytest.raises(FileWriteError, match=f"cannot write {path}: "):
        io.write_table(small_frame(), path)
    assert path.read_bytes() == before
    assert leftovers(tmp_path, {"f.csv"}) == []


@pytest.mark.parametrize("writer", ["pyarrow", "pandas"])
def test_csv_is_written_in_chunks_with_every_digit(tmp_path, monkeypatch, writer):
    from crysatom_featurizers.io import outputs

    if writer == "pandas":
        monkeypatch.setitem(sys.modules, "pyarrow", None)
    else:
        pytest.importorskip("pyarrow")
    monkeypatch.setattr(outputs, "_CSV_CHUNK_CELLS", 10)  # 5 rows of 2 columns a chunk
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(23)], "x": rng.normal(size=23) * 1e-5})
    frame.loc[3, "x"] = np.nan
    frame["error"] = [None] * 22 + ['bad "quote", comma']
    path = io.write_table(frame, tmp_path / "f.csv")
    back = pd.read_csv(path, float_precision="round_trip")
    assert list(back.columns) == ["id", "x", "error"] and len(back) == 23  # one header
    np.testing.assert_array_equal(back["x"].to_numpy(), frame["x"].to_numpy())
    assert back["error"].isna().sum() == 22 and back["error"].iat[22] == 'bad "quote", comma'


def test_save_model_round_trip_and_failure(tmp_path, monkeypatch):
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit([[0.0], [1.0], [2.0]], [1.0, 3.0, 5.0])
    path = io.save_model(model, tmp_path / "m.joblib")
    np.testing.assert_allclose(joblib.load(path).predict([[3.0]]), [7.0])
    before = path.read_bytes()
    monkeypatch.setattr(joblib, "dump", lambda value, handle: fail_after_partial_output(handle))
    with pytest.raises(FileWriteError, match=f"cannot write {path}: "):
        io.save_model(LinearRegression(), path)
    assert path.read_bytes() == before
    np.testing.assert_allclose(joblib.load(path).predict([[3.0]]), [7.0])


def test_save_figure_uses_the_extension(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    assert io.save_figure(figure, tmp_path / "f.png", dpi=40).read_bytes()[:4] == b"\x89PNG"
    assert io.save_figure(figure, tmp_path / "f.svg").read_text().lstrip().startswith("<?xml")
    assert io.save_figure(figure, tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"
    with pytest.raises(ValueError, match="extension"):
        io.save_figure(figure, tmp_path / "noextension")
    plt.close(figure)


def test_check_output_path(tmp_path):
    assert io.check_output_path(tmp_path / "new" / "o.csv", io.TABLE_SUFFIXES).parent.is_dir()
    with pytest.raises(ValueError, match=r"o\.txt must end with one of: \.csv"):
        io.check_output_path(tmp_path / "o.txt", io.TABLE_SUFFIXES)
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        io.check_output_path(tmp_path / "d.csv", io.TABLE_SUFFIXES)


@pytest.mark.parametrize("name", ["e.json", "e.json.gz", "e.csv"])
def test_embedding_files_are_written_atomically(tmp_path, monkeypatch, name):
    embedding = ElementEmbedding.from_dict({"H": [0.0, 1.0], "O": [2.0, 3.0]}, name="toy")
    write = embedding.to_csv if name.endswith(".csv") else embedding.to_json
    path = write(tmp_path / name)
    before = path.read_bytes()

    def too_large(fd):
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))

    monkeypatch.setattr(os, "fsync", too_large)  # after the data went to the temporary file
    with pytest.raises(FileWriteError) as info:
        write(path)
    assert str(info.value) == f"cannot write {path}: {EFBIG_TEXT}"
    assert path.read_bytes() == before
    assert leftovers(tmp_path, {name}) == []


# ------------------------------------------------------------------------------ readers


@pytest.fixture
def nacl_cif_folder(tmp_path, nacl, perovskite) -> Path:
    folder = tmp_path / "cifs"
    folder.mkdir()
    nacl.to(filename=str(folder / "b.cif"))
    perovskite.to(filename=str(folder / "a.cif"))
    return folder


def test_read_input_examples_and_limit():
    table = io.read_input(None, limit=3)
    assert table.kind == "example" and table.has_structures and len(table.frame) == 3
    assert list(table.frame.columns) == ["id", "formula", "composition", "structure"]
    assert table.errors == {}


def test_read_input_missing_and_unknown(tmp_path):
    with pytest.raises(FileNotFoundError, match="input .*nothing.csv does not exist"):
        io.read_input(tmp_path / "nothing.csv")
    (tmp_path / "x.xyz").write_text("1\n\nH 0 0 0\n")
    with pytest.raises(ValueError, match="cannot tell the format of .*x.xyz"):
        io.read_input(tmp_path / "x.xyz")


def test_read_cif_folder_and_single_file(nacl_cif_folder, nacl):
    table = io.read_input(nacl_cif_folder)
    assert table.kind == "cif-folder" and list(table.frame["id"]) == ["a", "b"]
    assert table.where == ["file a.cif", "file b.cif"]
    assert table.frame["structure"].iat[1].matches(nacl)
    assert list(io.read_input(nacl_cif_folder, limit=1).frame["id"]) == ["a"]
    single = io.read_input(nacl_cif_folder / "b.cif")
    assert single.kind == "cif" and single.frame["formula"].iat[0] == "NaCl"


def test_read_cif_folder_with_id_prop_and_bad_file(nacl_cif_folder):
    (nacl_cif_folder / "id_prop.csv").write_text("b,1.5\nmissing,2\na,x\n")
    table = io.read_input(nacl_cif_folder, use_id_prop=True)
    assert list(table.frame["id"]) == ["b", "missing", "a"]
    np.testing.assert_array_equal(table.frame["target"].isna(), [False, False, True])
    assert list(table.errors) == [1] and "missing.cif not found" in table.errors[1]
    # Without use_id_prop the id_prop.csv is ignored.
    assert "target" not in io.read_input(nacl_cif_folder).frame.columns


@pytest.mark.parametrize(
    "content, match",
    [("", "is empty"), ("id,target\nb,1\n", "looks like it has a header"), ("b\n", "two columns")],
)
def test_read_id_prop_errors(nacl_cif_folder, content, match):
    (nacl_cif_folder / "id_prop.csv").write_text(content)
    with pytest.raises(ValueError, match=match) as info:
        io.read_id_prop(nacl_cif_folder)
    assert "id_prop.csv" in str(info.value)


def test_empty_cif_folder(tmp_path):
    with pytest.raises(ValueError, match="no .cif files in"):
        io.read_input(tmp_path)


def test_read_csv_formulas_ids_and_target(tmp_path):
    path = tmp_path / "f.csv"
    pd.DataFrame(
        {"material_id": ["m1", "m2", "m3"], "Formula": ["NaCl", "Fe2O3(", "SiO2"], "y": [1, 2, 3]}
    ).to_csv(path, index=False)
    table = io.read_input(path, target="y")
    assert table.kind == "csv" and not table.has_structures
    assert list(table.frame["id"]) == ["m1", "m2", "m3"] and table.where[0] == "id m1"
    assert table.frame["composition"].iat[2] == Composition("SiO2")
    assert list(table.errors) == [1] and "Fe2O3(" in table.errors[1]
    np.testing.assert_array_equal(table.frame["target"], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"target column 'z' not in .*f.csv; numeric columns"):
        io.read_input(path, target="z")


def test_read_csv_cif_text_and_relative_path(tmp_path, nacl, perovskite):
    nacl.to(filename=str(tmp_path / "nacl.cif"))
    path = tmp_path / "c.csv"
    pd.DataFrame({"cif": ["nacl.cif", perovskite.to(fmt="cif"), ""]}).to_csv(path, index=False)
    table = io.read_csv_table(path)
    assert table.has_structures and list(table.frame["id"]) == ["1", "2", "3"]
    assert table.frame["structure"].iat[0].matches(nacl)
    assert table.frame["formula"].iat[1] == "SrTiO3"
    assert list(table.errors) == [2] and table.where[2] == "line 4 of c.csv"


@pytest.mark.parametrize(
    "content, match",
    [
        ("id,formula\n", r"h\.csv has a header but no data rows"),
        ("", r"h\.csv is empty"),
        ("id,name\n1,x\n", r"h\.csv needs a 'formula' or a 'cif' column; found columns"),
    ],
)
def test_read_csv_whole_file_errors(tmp_path, content, match):
    path = tmp_path / "h.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        io.read_input(path)


def structure_frame(structures: list[Structure]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "structure": [s.as_dict() for s in structures],
            "y": [1.0 + i for i in range(len(structures))],
        },
        index=[f"s{i}" for i in range(len(structures))],
    )


@pytest.mark.parametrize("orient", ["columns", "index", "records", "split", "table"])
def test_read_pandas_to_json_layouts(tmp_path, small_structures, orient):
    path = tmp_path / f"{orient}.json"
    structure_frame(small_structures).to_json(path, orient=orient)
    table = io.read_input(path, target="y")
    assert table.kind == "json" and table.has_structures and table.errors == {}
    assert len(table.frame) == len(small_structures)
    for read, built in zip(table.frame["structure"], small_structures):
        assert read.matches(built)
    np.testing.assert_array_equal(table.frame["target"], [1.0, 2.0, 3.0, 4.0])
    if orient in ("columns", "index", "split", "table"):
        assert list(table.frame["id"]) == ["s0", "s1", "s2", "s3"]


def test_read_matminer_json_and_gzip(tmp_path, small_structures):
    from matminer.utils.io import store_dataframe_as_json

    path = tmp_path / "m.json.gz"
    frame = pd.DataFrame({"structure": small_structures, "jid": ["j1", "j2", "j3", "j4"]})
    store_dataframe_as_json(frame, str(path), pbar=False)
    table = io.read_input(path, limit=2)
    assert list(table.frame["id"]) == ["j1", "j2"] and table.where[0] == "jid j1"
    assert table.frame["structure"].iat[1].matches(small_structures[1])
    gz = tmp_path / "p.json.gz"
    structure_frame(small_structures).to_json(gz)
    assert len(io.read_input(gz).frame) == 4


def test_read_json_formulas_cif_text_and_bad_rows(tmp_path, nacl):
    path = tmp_path / "f.json"
    pd.DataFrame({"formula": ["NaCl", "Fe2O3("]}).to_json(path)
    table = io.read_input(path)
    assert not table.has_structures and list(table.errors) == [1]
    path = tmp_path / "s.json"
    pd.DataFrame({"structure": [nacl.to(fmt="cif"), 3]}).to_json(path, orient="records")
    table = io.read_input(path)
    assert table.frame["formula"].iat[0] == "NaCl"
    assert table.errors == {1: "bad structure: not a structure: int"}


def test_read_json_list_of_structures(tmp_path, small_structures):
    path = tmp_path / "l.json"
    path.write_text(json.dumps([s.as_dict() for s in small_structures]))
    assert len(io.read_input(path).frame) == 4


@pytest.mark.parametrize(
    "content, match",
    [
        ('{"a": 1}', r"is not a table this program reads: expected a matminer store_dataframe"),
        ('{"a": {"0": 1}}', r"needs a 'structure', 'cif', 'composition' or 'formula' column"),
        ("not json", r"cannot read JSON .*bad.json: "),
        ('{"y": {}}', r"needs a 'structure', 'cif', 'composition' or 'formula' column"),
        ('{"formula": {}}', "holds a table with no rows"),
        ("[1, 2]", "is not a table"),
    ],
)
def test_read_json_whole_file_errors_print_nothing(tmp_path, capfd, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match) as info:
        io.read_input(path)
    assert "bad.json" in str(info.value) and "\n" not in str(info.value)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_short_error():
    assert io.short_error(ValueError("a\n  b")) == "a b"
    assert io.short_error(KeyboardInterrupt()) == "KeyboardInterrupt"
    text = "Traceback (most recent call last):\n  x\nValueError: bad thing\nTO SKIP THESE ERRORS..."
    assert io.short_error(text) == "bad thing"
    assert io.short_error("x" * 1000, max_chars=20) == "x" * 17 + "..."


def test_io_imports_only_the_standard_library():
    heavy = (
        "torch",
        "pandas",
        "pymatgen",
        "matminer",
        "joblib",
        "crysatom_featurizers.featurizers",
        "crysatom_featurizers.nn",
        "crysatom_featurizers.estimators",
        "crysatom_featurizers.embeddings",
    )
    script = (
        "import sys, crysatom_featurizers.io\n"
        f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    )
    assert result.stdout.strip() == "[]"
