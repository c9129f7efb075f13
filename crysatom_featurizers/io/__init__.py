"""Reading crystal inputs and writing result files, atomically.

Readers
-------
:func:`read_input` reads the inputs the ``crysatom`` command line accepts into an
:class:`InputTable`: a folder of CIF files (optionally with a CGCNN ``id_prop.csv``), a single
``.cif``, a CSV with a ``formula`` or a ``cif`` column, a JSON table (matminer's
``store_dataframe_as_json`` or pandas ``DataFrame.to_json``), or the example crystals that ship
with the package. Problems with the input as a whole raise ordinary exceptions
(:class:`FileNotFoundError`, :class:`ValueError`, :class:`ImportError`) whose message is one line
naming the file and the fault; rows that cannot be read are collected in
:attr:`InputTable.errors` so that callers decide whether to stop or keep going.

Writers
-------
:func:`atomic_write` writes a file under a temporary name in the same folder and renames it into
place only once everything was written, so a failed write (full disk, file-size limit,
interruption, an exception in the caller) leaves the previous file as it was.
:func:`write_table`, :func:`save_model` and :func:`save_figure` write features, fitted models
and figures through it. Write failures raise :class:`FileWriteError`, an :class:`OSError` whose
message is one line naming the file: ``cannot write out.csv: [Errno 27] File too large``.

The readers live in :mod:`crysatom_featurizers.io.inputs`, the writers in
:mod:`crysatom_featurizers.io.outputs`; everything is importable from here. The package sits
low in the layering: it imports only the standard library at module level (pandas, pymatgen,
monty, joblib, tqdm load on first use) and nothing of the featurizers, the neural network code
or the estimators, so the embeddings can use it.
"""

from __future__ import annotations

from crysatom_featurizers.io.inputs import (
    ID_COLUMNS,
    InputTable,
    load_json_table,
    parse_targets,
    read_cif_file,
    read_cif_folder,
    read_csv_table,
    read_example,
    read_id_prop,
    read_input,
    read_json_table,
    short_error,
)
from crysatom_featurizers.io.outputs import (
    TABLE_SUFFIXES,
    FileWriteError,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    check_output_path,
    save_figure,
    save_model,
    write_table,
)

__all__ = [
    "FileWriteError",
    "ID_COLUMNS",
    "InputTable",
    "TABLE_SUFFIXES",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output_path",
    "load_json_table",
    "read_cif_file",
    "read_cif_folder",
    "read_csv_table",
    "read_example",
    "parse_targets",
    "read_id_prop",
    "read_input",
    "read_json_table",
    "save_figure",
    "save_model",
    "short_error",
    "write_table",
]
