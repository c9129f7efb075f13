"""Pretraining corpus: the shared JARVIS and Materials Project structures, or any user corpus.

The default corpus is the union of two public sets stored next to the repository
(``../shared/data``, see its README):

* ``jarvis``: JARVIS-DFT 3D 2021.8.12, 55,723 crystals (ids: ``jarvis_index``);
* ``mp``: the Materials Project subset released with CrysXPP (2022), 36,737 crystals
  (ids: ``material_id``).

The data folder defaults to ``<repo>/../shared/data``; the environment variable
``CRYSATOM_DATA_DIR`` or the ``data_dir`` argument overrides it.

De-duplication
--------------
Running pymatgen's ``StructureMatcher`` over ~92K crystals is far too slow for a data-loading
step, so two crystals count as duplicates when they share a cheap *dedupe key*::

    reduced formula | number of sites | volume per atom (Å^3, 2 decimals)
                    | sorted lattice lengths of the Niggli-reduced cell (Å, 2 decimals)

The Niggli reduction makes the key independent of the choice of cell vectors for the same
lattice. The key collapses copies of one structure (within a set or across sets) and keeps
polymorphs apart. It deliberately keeps the same compound relaxed with two different
functionals (JARVIS uses OptB88vdW, Materials Project PBE): those cells differ by far more
than 0.01 Å, and they are counted as distinct training examples. Values that straddle a
rounding boundary can, rarely, keep a near-identical pair. The first occurrence wins, in the
order the sources are given (``jarvis`` before ``mp`` by default).

On the shared corpus the key removes 2,372 of 92,460 crystals (JARVIS 55,723 -> 53,497;
MP 36,737 -> 36,591), leaving 90,088. A check with pymatgen's ``StructureMatcher`` (default
tolerances) found no false merges: 150 randomly sampled duplicate groups of the 2,164, and all
107 groups that span both sets, are the same crystal. What the key keeps is the overlap between
the two sets relaxed separately: 17,514 (reduced formula, number of sites) pairs occur in both,
and in a random sample of 150 such pairs ``StructureMatcher`` judged 139 to be the same
crystal, so roughly 16K crystals appear twice, once per functional.

Corpus checksum
---------------
``corpus_checksum`` is the SHA-256 over the sorted lines ``source<TAB>source_id<TAB>key``,
one per kept crystal. It depends only on which crystals are in the corpus, not on row order.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pymatgen.core import Composition, Structure

from crysatom_featurizers.io import atomic_write_bytes  # temporary file, then os.replace

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR_ENV = "CRYSATOM_DATA_DIR"
DEFAULT_SOURCES = ("jarvis", "mp")
DEFAULT_CACHE_DIR = REPO_ROOT / "training" / "cache"
CORPUS_COLUMNS = ["source", "source_id", "formula", "num_sites", "dedupe_key", "structure"]
DEDUPE_KEY_DESCRIPTION = (
    "reduced formula | number of sites | volume per atom (Å^3, 2 decimals) | "
    "sorted Niggli-reduced lattice lengths (Å, 2 decimals); first occurrence kept"
)
# Bump when the key or the cached index layout changes, so stale caches are rebuilt.
_INDEX_VERSION = 1


@dataclass(frozen=True)
class SharedSource:
    """A corpus file in the shared data folder."""

    filename: str
    id_column: str
    description: str


SHARED_SOURCES: dict[str, SharedSource] = {
    "jarvis": SharedSource(
        "jarvis_dft_3d_2021.json.gz",
        "jarvis_index",
        "JARVIS-DFT 3D 2021.8.12 (NIST), as processed by the CrysAtom authors",
    ),
    "mp": SharedSource(
        "mp_crysxpp_2022.json.gz",
        "material_id",
        "Materials Project structures released with CrysXPP (Das et al. 2022), CC-BY 4.0",
    ),
}


def default_data_dir() -> Path:
    """Return the shared data folder: ``$CRYSATOM_DATA_DIR`` or ``<repo>/../shared/data``."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return REPO_ROOT.parent / "shared" / "data"


def shared_source_path(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Path of a named shared source file (``"jarvis"`` or ``"mp"``).

    Raises
    ------
    FileNotFoundError
        If the file is absent, naming the folder that was searched and how to change it.
    """
    if name not in SHARED_SOURCES:
        raise ValueError(
            f"unknown corpus source {name!r}; expected one of {sorted(SHARED_SOURCES)}"
        )
    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    path = folder / SHARED_SOURCES[name].filename
    if not path.exists():
        raise FileNotFoundError(
            f"corpus file for {name!r} not found: {path}. Pass data_dir=... or set "
            f"${DATA_DIR_ENV} to the folder holding {SHARED_SOURCES[name].filename}."
        )
    return path


def structure_key(structure: Structure, decimals: int = 2) -> str:
    """Cheap de-duplication key of a structure (see the module docstring).

    Parameters
    ----------
    structure
        A pymatgen structure.
    decimals
        Rounding of the volume per atom (Å^3) and of the lattice lengths (Å).

    Returns
    -------
    str
        ``"formula|num_sites|volume_per_atom|a,b,c"``, e.g. ``"NaCl|8|23.03|5.69,5.69,5.69"``
        for the conventional rock-salt cell with a = 5.69 Å.
    """
    n_sites = len(structure)
    volume_per_atom = structure.volume / n_sites
    lengths = sorted(structure.lattice.get_niggli_reduced_lattice().abc)
    # Adding 0.0 turns a rounded -0.0 into 0.0 so equal values format equally.
    fmt = f"{{:.{decimals}f}}"
    lengths_txt = ",".join(fmt.format(round(x, decimals) + 0.0) for x in lengths)
    vpa_txt = fmt.format(round(volume_per_atom, decimals) + 0.0)
    return f"{structure.composition.reduced_formula}|{n_sites}|{vpa_txt}|{lengths_txt}"


def _frame_from_structures(
    structures: Sequence[Structure], ids: Sequence[Any], name: str
) -> pd.DataFrame:
    """Build the corpus columns from structures and ids (keys and formulas computed here)."""
    rows = []
    for i, (sid, structure) in enumerate(zip(ids, structures, strict=True)):
        if not isinstance(structure, Structure):
            raise TypeError(
                f"corpus {name!r}, row {i} (id {sid!r}): expected a pymatgen Structure, "
                f"got {type(structure).__name__}"
            )
        rows.append(
            (
                name,
                str(sid),
                structure.composition.reduced_formula,
                len(structure),
                structure_key(structure),
                structure,
            )
        )
    return pd.DataFrame(rows, columns=CORPUS_COLUMNS)


def load_structures(
    source: str | os.PathLike | pd.DataFrame | Sequence[Structure],
    *,
    name: str | None = None,
    id_column: str | None = None,
    structure_column: str = "structure",
    data_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Load one corpus source into the standard corpus columns.

    Parameters
    ----------
    source
        One of:

        * ``"jarvis"`` or ``"mp"``: a shared data file (looked up in ``data_dir``);
        * a DataFrame with a ``structure_column`` of pymatgen structures;
        * a sequence of pymatgen structures;
        * a folder of CIF files (``*.cif``, read in sorted file-name order);
        * a single ``.cif`` file;
        * a matminer json file (``.json`` or ``.json.gz``) with a structure column.
    name
        Corpus name written in the ``source`` column. Defaults to the shared name, the folder or
        file name, ``"dataframe"`` or ``"structures"``.
    id_column
        Column holding row ids (DataFrame and json inputs). Defaults to the known id column of a
        shared source, else the DataFrame index. CIF files use their file stem.
    structure_column
        Column holding the structures.
    data_dir
        Folder of the shared data files; see :func:`default_data_dir`.
    progress
        Show matminer's progress bar while decoding json files.

    Returns
    -------
    pandas.DataFrame
        Columns ``source``, ``source_id`` (str), ``formula`` (reduced formula), ``num_sites``,
        ``dedupe_key`` and ``structure``; one row per input structure, input order.
    """
    if isinstance(source, pd.DataFrame):
        return _load_dataframe(source, name or "dataframe", id_column, structure_column)
    if isinstance(source, str) and source in SHARED_SOURCES and not Path(source).exists():
        path = shared_source_path(source, data_dir)
        frame = _read_matminer_json(path, progress)
        return _load_dataframe(
            frame, name or source, id_column or SHARED_SOURCES[source].id_column, structure_column
        )
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".cif")
            if not files:
                raise FileNotFoundError(f"no .cif files in folder {path}")
            structures = [_read_cif(p) for p in files]
            return _frame_from_structures(structures, [p.stem for p in files], name or path.name)
        if not path.exists():
            raise FileNotFoundError(
                f"corpus source not found: {path} (expected one of {sorted(SHARED_SOURCES)}, "
                "a folder of CIFs, a .cif file or a matminer .json/.json.gz file)"
            )
        if path.suffix.lower() == ".cif":
            return _frame_from_structures([_read_cif(path)], [path.stem], name or path.stem)
        if path.name.endswith((".json", ".json.gz")):
            frame = _read_matminer_json(path, progress)
            base = path.name.removesuffix(".gz").removesuffix(".json")
            return _load_dataframe(frame, name or base, id_column, structure_column)
        raise ValueError(f"unsupported corpus file {path}: expected .cif, .json or .json.gz")
    if isinstance(source, Iterable):
        structures = list(source)
        return _frame_from_structures(structures, range(len(structures)), name or "structures")
    raise TypeError(
        "corpus source must be a shared source name, a path, a DataFrame or a sequence of "
        f"structures; got {type(source).__name__}"
    )


def _read_cif(path: Path) -> Structure:
    try:
        return Structure.from_file(str(path))
    except Exception as exc:  # pymatgen raises several error types for bad CIFs
        raise ValueError(f"could not read a structure from {path}: {exc}") from exc


def _read_matminer_json(path: Path, progress: bool) -> pd.DataFrame:
    from matminer.utils.io import load_dataframe_from_json

    return load_dataframe_from_json(str(path), pbar=progress)


def _load_dataframe(
    frame: pd.DataFrame, name: str, id_column: str | None, structure_column: str
) -> pd.DataFrame:
    if structure_column not in frame.columns:
        raise KeyError(
            f"corpus {name!r} has no {structure_column!r} column; columns are {list(frame.columns)}"
        )
    if id_column is not None and id_column not in frame.columns:
        raise KeyError(f"corpus {name!r} has no id column {id_column!r}")
    ids = frame[id_column].tolist() if id_column is not None else frame.index.tolist()
    return _frame_from_structures(frame[structure_column].tolist(), ids, name)


def deduplicate(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop rows whose ``dedupe_key`` was already seen; the first occurrence is kept.

    Parameters
    ----------
    frame
        A corpus frame from :func:`load_structures` (or any frame with a ``dedupe_key``
        column, or a ``structure`` column from which the key is computed).

    Returns
    -------
    pandas.DataFrame
        The kept rows, in input order, with a fresh 0..n-1 index.
    """
    if "dedupe_key" not in frame.columns:
        frame = frame.assign(dedupe_key=[structure_key(s) for s in frame["structure"]])
    return frame.loc[~frame["dedupe_key"].duplicated(keep="first")].reset_index(drop=True)


def corpus_checksum(frame: pd.DataFrame) -> str:
    """SHA-256 hex digest over the sorted ``source<TAB>source_id<TAB>dedupe_key`` lines."""
    lines = sorted(
        f"{s}\t{i}\t{k}"
        for s, i, k in zip(frame["source"], frame["source_id"], frame["dedupe_key"], strict=True)
    )
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _source_label(source: Any, i: int) -> str:
    if isinstance(source, str) and source in SHARED_SOURCES:
        return source
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name.removesuffix(".gz").removesuffix(".json")
    return f"source{i}"


def _build_info(
    names: list[str],
    sizes_before: dict[str, int],
    kept: pd.DataFrame,
    dedupe: bool,
    files: dict[str, str],
) -> dict[str, Any]:
    sizes_after = {n: int((kept["source"] == n).sum()) for n in names}
    total_before = int(sum(sizes_before.values()))
    return {
        "names": names,
        "files": files,
        "sizes_before_dedupe": sizes_before,
        "size_before_dedupe": total_before,
        "sizes_after_dedupe": sizes_after,
        "size": len(kept),
        "duplicates_removed": total_before - len(kept),
        "dedupe": dedupe,
        "dedupe_key": DEDUPE_KEY_DESCRIPTION,
        "checksum": corpus_checksum(kept),
        "checksum_method": "sha256 over sorted 'source\\tsource_id\\tdedupe_key' lines",
    }


def load_corpus(
    sources: Sequence[Any] | str = DEFAULT_SOURCES,
    data_dir: str | os.PathLike | None = None,
    *,
    dedupe: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    """Load, concatenate and de-duplicate corpus sources.

    Parameters
    ----------
    sources
        Sources in priority order (the first occurrence of a duplicate is kept). Each is anything
        :func:`load_structures` accepts; the defaults are the shared ``"jarvis"`` and ``"mp"``
        sets (about 20 s and 15 s to decode on one core).
    data_dir
        Folder of the shared data files; see :func:`default_data_dir`.
    dedupe
        Drop duplicate structures (see the module docstring for the key).
    progress
        Show progress bars while decoding json files.

    Returns
    -------
    pandas.DataFrame
        Columns ``source``, ``source_id``, ``formula``, ``num_sites``, ``dedupe_key``,
        ``structure``. ``frame.attrs["corpus"]`` holds the corpus record: source names, files,
        sizes before and after de-duplication and the checksum (see :func:`corpus_info`).

    Examples
    --------
    >>> corpus = load_corpus()  # doctest: +SKIP
    >>> corpus.attrs["corpus"]["size"]  # doctest: +SKIP
    """
    if isinstance(sources, (str, os.PathLike, pd.DataFrame)):
        sources = [sources]
    frames, names, files = [], [], {}
    for i, source in enumerate(sources):
        frame = load_structures(source, data_dir=data_dir, progress=progress)
        label = frame["source"].iloc[0] if len(frame) else _source_label(source, i)
        if label in names:
            label = f"{label}_{i}"
            frame["source"] = label
        names.append(label)
        if isinstance(source, str) and source in SHARED_SOURCES and not Path(source).exists():
            files[label] = SHARED_SOURCES[source].filename
        elif isinstance(source, (str, os.PathLike)):
            files[label] = Path(source).name
        frames.append(frame)
    sizes_before = {n: len(f) for n, f in zip(names, frames, strict=True)}
    combined = (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CORPUS_COLUMNS)
    )
    kept = deduplicate(combined) if dedupe else combined.reset_index(drop=True)
    kept.attrs["corpus"] = _build_info(names, sizes_before, kept, dedupe, files)
    return kept


def corpus_info(frame: pd.DataFrame) -> dict[str, Any]:
    """Corpus record of a frame: ``frame.attrs["corpus"]`` if present, else recomputed.

    The record has ``names``, ``sizes_before_dedupe``, ``size_before_dedupe``,
    ``sizes_after_dedupe``, ``size``, ``duplicates_removed``, ``dedupe_key``, ``checksum`` and,
    for subsets, a ``subset`` entry.
    """
    info = frame.attrs.get("corpus")
    if info is not None:
        return dict(info)
    if "dedupe_key" not in frame.columns:
        frame = frame.assign(dedupe_key=[structure_key(s) for s in frame["structure"]])
    names = list(dict.fromkeys(frame["source"]))
    sizes = {n: int((frame["source"] == n).sum()) for n in names}
    return _build_info(names, sizes, frame, dedupe=False, files={})


def _composition_elements(frame: pd.DataFrame) -> list[frozenset[str]]:
    """Element symbols of each row, from the reduced formula (species map to elements)."""
    cache: dict[str, frozenset[str]] = {}
    out = []
    for formula in frame["formula"]:
        if formula not in cache:
            cache[formula] = frozenset(el.symbol for el in Composition(formula).elements)
        out.append(cache[formula])
    return out


def select_subset(
    corpus: pd.DataFrame, n: int, seed: int = 0, max_sites: int | None = None
) -> pd.DataFrame:
    """Deterministic subset of ``n`` crystals that still covers every element of the corpus.

    First, in order of increasing number of sites (ties: corpus order), every crystal that adds
    an element not yet covered is taken. The remaining places are then filled uniformly at
    random (numpy PCG64 seeded with ``seed``) from the other crystals.

    Parameters
    ----------
    corpus
        A corpus frame from :func:`load_corpus` (needs ``formula`` and ``num_sites``).
    n
        Number of crystals. If ``n`` is at least the number of eligible crystals, all of them
        are returned.
    seed
        Seed of the random fill.
    max_sites
        Drop crystals with more than ``max_sites`` sites first; coverage is then over the
        elements of the remaining crystals.

    Returns
    -------
    pandas.DataFrame
        The chosen rows in corpus order, with the corpus index kept. ``attrs["corpus"]`` is the
        parent record plus a ``subset`` entry (n, seed, max_sites, coverage rows, checksum).

    Raises
    ------
    ValueError
        If ``n`` is smaller than the number of crystals needed to cover every element.
    """
    if n < 1:
        raise ValueError(f"n must be a positive number of crystals, got {n}")
    parent = corpus_info(corpus) if len(corpus) else {}
    eligible = corpus
    if max_sites is not None:
        eligible = corpus.loc[corpus["num_sites"] <= max_sites]
    positions = np.arange(len(eligible))
    elements = _composition_elements(eligible)
    order = np.lexsort((positions, eligible["num_sites"].to_numpy()))
    covered: set[str] = set()
    cover: list[int] = []
    for pos in order:
        if not elements[pos] <= covered:
            covered |= elements[pos]
            cover.append(int(pos))
    if n >= len(eligible):
        chosen = positions
    else:
        if n < len(cover):
            raise ValueError(
                f"n={n} is too small: covering all {len(covered)} elements needs {len(cover)} "
                "crystals"
            )
        rest = np.setdiff1d(positions, cover, assume_unique=True)
        rng = np.random.default_rng(seed)
        fill = rng.choice(rest, size=n - len(cover), replace=False) if n > len(cover) else []
        chosen = np.sort(
            np.concatenate([np.asarray(cover, dtype=int), np.asarray(fill, dtype=int)])
        )
    subset = eligible.iloc[chosen].copy()
    info = dict(parent)
    info["subset"] = {
        "n": len(subset),
        "requested_n": n,
        "seed": seed,
        "max_sites": max_sites,
        "coverage_rows": len(cover),
        "elements_covered": len(covered),
        "checksum": corpus_checksum(subset),
    }
    # A fresh attrs dict, so the parent corpus record is never modified through a shared one.
    subset.attrs = {**subset.attrs, "corpus": info}
    return subset


# --------------------------------------------------------------------------------------------
# Structure-free index (formulas and keys), cached on disk for fast re-use.


def load_corpus_index(
    sources: Sequence[str] = DEFAULT_SOURCES,
    data_dir: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = DEFAULT_CACHE_DIR,
    progress: bool = False,
) -> pd.DataFrame:
    """The de-duplicated shared corpus without structures, cached on disk.

    Atom2Vec needs only compositions, so re-decoding ~92K structures (about a minute) on every
    run is avoided: the index (``source``, ``source_id``, ``formula``, ``num_sites``,
    ``dedupe_key``) and the corpus record are cached in ``cache_dir`` under a name that
    depends on the source files' names, sizes and modification times.

    Parameters
    ----------
    sources
        Shared source names (``"jarvis"``, ``"mp"``), in priority order.
    data_dir
        Folder of the shared data files; see :func:`default_data_dir`.
    cache_dir
        Cache folder (``training/cache`` by default, git-ignored); ``None`` disables caching.
    progress
        Show progress bars while decoding json files.

    Returns
    -------
    pandas.DataFrame
        The index columns, with ``attrs["corpus"]`` as in :func:`load_corpus` and
        ``attrs["from_cache"]`` telling whether the cache was used.
    """
    sources = [sources] if isinstance(sources, str) else list(sources)
    paths = [shared_source_path(s, data_dir) for s in sources]
    signature = json.dumps(
        [_INDEX_VERSION, sources]
        + [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in paths]
    )
    digest = hashlib.sha256(signature.encode()).hexdigest()[:16]
    cache_path = Path(cache_dir) / f"corpus_index_{digest}.json.gz" if cache_dir else None
    if cache_path is not None and cache_path.exists():
        with gzip.open(cache_path, "rt", encoding="utf-8") as handle:
            payload = json.load(handle)
        index = pd.DataFrame(payload["rows"], columns=payload["columns"])
        index.attrs["corpus"] = payload["corpus"]
        index.attrs["from_cache"] = True
        return index
    corpus = load_corpus(sources, data_dir, progress=progress)
    columns = [c for c in CORPUS_COLUMNS if c != "structure"]
    index = corpus[columns].copy()
    index.attrs["corpus"] = corpus.attrs["corpus"]
    index.attrs["from_cache"] = False
    del corpus
    if cache_path is not None:
        payload = {
            "columns": columns,
            "rows": index.to_numpy().tolist(),
            "corpus": index.attrs["corpus"],
        }
        text = json.dumps(payload, default=int).encode("utf-8")
        atomic_write_bytes(cache_path, gzip.compress(text, mtime=0))
    return index
