"""Atom2Vec element vectors (Zhou et al., PNAS 2018) from the pretraining corpus compositions.

Method
------
1. Every composition is reduced to its reduced formula (species map to elements). By default
   each distinct reduced formula counts once, as a compound; ``count="structure"`` counts
   every crystal instead, so polymorphs weigh more.
2. For each element ``A`` in a compound, its *environment* is the compound with ``A`` replaced
   by a placeholder that keeps ``A``'s count, written ``"(n)"`` followed by the other elements
   with their counts, in alphabetical order of symbol. In Fe2O3 the environment of Fe is
   ``"(2)O3"`` and that of O is ``"(3)Fe2"``; in NaCl, Na has ``"(1)Cl1"``; an elemental solid
   gives ``"(1)"``. Counts of 1 are written out so that no two environments collide.
3. ``X[i, j]`` counts the compounds in which element ``i`` occurs in environment ``j``.
4. Each row of ``X`` is scaled to unit Euclidean norm (``norm="l2"``, the default, so that
   frequent and rare elements are compared by the shape of their environment profile rather
   than by how often they occur; ``norm="l1"`` scales rows to sum 1).
5. The (uncentred) SVD ``X = U D V^T`` is computed exactly (``X`` has one row per element, so
   a dense SVD of the ~90 x ~10^5 matrix is cheap), with a deterministic sign convention: the
   entry of largest magnitude in each column of ``U`` is positive.
6. The ``k``-dimensional vector of element ``i`` is row ``i`` of ``U_k D_k``, as in the paper.
   The vectors are **not** L2-normalised afterwards. ``k`` is capped by the numerical rank of
   ``X`` (at most the number of elements); the cap is recorded in the file metadata.

Command line::

    python -m training.atom2vec --dims 50 100 200 --out crysatom_featurizers/embeddings/data/

writes ``atom2vec_{dim}.json`` with the corpus record, the rank cap, the explained variance,
hardware, wall time, git commit and package version. The rank is at most the number of
elements (89 for the shared corpus), so for larger requested dimensions the singular values
beyond the rank are zero. By default the file keeps the requested dimension in its name but
holds only the informative columns: ``atom2vec_200.json`` has 89 columns, with
``requested_dim=200`` and ``dim_capped_by_rank`` in the metadata, which the registry accepts.
``--pad`` appends the zero columns instead, for code that needs the nominal width.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from pymatgen.core import Composition

from crysatom_featurizers.chemistry import atomic_number
from training.corpus import DEFAULT_SOURCES, REPO_ROOT, load_corpus_index
from training.provenance import cpu_model, git_state, package_version

CITATION = (
    "Q. Zhou, P. Tang, S. Liu, J. Pan, Q. Yan, S.-C. Zhang, 'Learning atoms for materials "
    "discovery', Proc. Natl. Acad. Sci. USA 115 (28), E6411-E6417 (2018), "
    "doi:10.1073/pnas.1801181115"
)
SOURCE = "crysatom-featurizers training/atom2vec.py"
DEFAULT_DIMS = (50, 100, 200)
DEFAULT_OUT = REPO_ROOT / "crysatom_featurizers" / "embeddings" / "data"


def _format_amount(amount: float) -> str:
    """Integer amounts as integers, others with up to 6 significant digits."""
    rounded = round(amount)
    if abs(amount - rounded) < 1e-6:
        return str(int(rounded))
    return f"{amount:.6g}"


def reduced_amounts(formula: str | Composition) -> dict[str, float]:
    """Element amounts of the reduced formula, e.g. ``"Fe4O6" -> {"Fe": 2.0, "O": 3.0}``.

    Species (``"Fe2+"``) are mapped to their element.
    """
    composition = Composition(formula) if not isinstance(formula, Composition) else formula
    reduced, _ = composition.element_composition.get_reduced_composition_and_factor()
    return {el.symbol: float(amount) for el, amount in reduced.items() if amount > 0}


def environments(formula: str | Composition) -> list[tuple[str, str]]:
    """``(element, environment)`` pairs of a compound (see the module docstring).

    Examples
    --------
    >>> environments("Fe2O3")  # pairs in order of atomic number
    [('O', '(3)Fe2'), ('Fe', '(2)O3')]
    """
    amounts = reduced_amounts(formula)
    symbols = sorted(amounts)
    pairs = []
    for symbol in sorted(amounts, key=atomic_number):
        rest = "".join(f"{o}{_format_amount(amounts[o])}" for o in symbols if o != symbol)
        pairs.append((symbol, f"({_format_amount(amounts[symbol])}){rest}"))
    return pairs


class Atom2Vec:
    """Atom2Vec: SVD of the row-normalised element x environment count matrix.

    Parameters
    ----------
    norm
        Row normalisation before the SVD: ``"l2"`` (unit Euclidean norm, default), ``"l1"``
        (rows sum to 1) or ``"none"``.
    count
        ``"formula"``: each distinct reduced formula counts once (default); ``"structure"``:
        every input composition counts.

    Attributes
    ----------
    elements_ : list of str
        Element symbols (rows), sorted by atomic number.
    environments_ : list of str
        Environment strings (columns), sorted.
    counts_ : scipy.sparse.csr_matrix
        The raw count matrix, shape ``(n_elements, n_environments)``.
    n_compounds_ : int
        Number of compounds (distinct reduced formulas, or compositions with
        ``count="structure"``) that were counted.
    singular_values_ : numpy.ndarray
        All singular values of the normalised matrix, descending.
    left_singular_vectors_ : numpy.ndarray
        ``U``, shape ``(n_elements, n_elements)`` (or fewer columns if there are fewer
        environments than elements).
    rank_ : int
        Numerical rank of the normalised matrix; the largest usable dimension.

    Examples
    --------
    >>> model = Atom2Vec().fit(["NaCl", "KCl", "NaBr", "KBr", "Fe2O3", "Al2O3"])
    >>> vectors, dim = model.vectors(3)
    >>> vectors.shape
    (7, 3)
    """

    def __init__(self, norm: str = "l2", count: str = "formula") -> None:
        self.norm = norm
        self.count = count

    def fit(self, formulas: Iterable[str | Composition]) -> Atom2Vec:
        """Build the count matrix from compositions and take its SVD."""
        if self.norm not in ("l2", "l1", "none"):
            raise ValueError(f"norm must be 'l2', 'l1' or 'none', got {self.norm!r}")
        if self.count not in ("formula", "structure"):
            raise ValueError(f"count must be 'formula' or 'structure', got {self.count!r}")
        formulas = list(formulas)
        if not formulas:
            raise ValueError("Atom2Vec needs at least one composition")
        # Reduce first, so that e.g. "Fe4O6" and "Fe2O3" are one compound.
        cache: dict[Any, tuple[tuple[str, str], ...]] = {}
        compounds: list[tuple[tuple[str, str], ...]] = []
        seen: set[tuple[tuple[str, str], ...]] = set()
        for formula in formulas:
            if formula not in cache:
                cache[formula] = tuple(environments(formula))
            pairs = cache[formula]
            if self.count == "formula":
                if pairs in seen:
                    continue
                seen.add(pairs)
            compounds.append(pairs)
        element_set = {el for pairs in compounds for el, _ in pairs}
        env_set = {env for pairs in compounds for _, env in pairs}
        self.elements_ = sorted(element_set, key=atomic_number)
        self.environments_ = sorted(env_set)
        row = {el: i for i, el in enumerate(self.elements_)}
        col = {env: j for j, env in enumerate(self.environments_)}
        rows = [row[el] for pairs in compounds for el, _ in pairs]
        cols = [col[env] for pairs in compounds for _, env in pairs]
        data = np.ones(len(rows), dtype=np.float64)
        shape = (len(self.elements_), len(self.environments_))
        # Duplicate (row, col) entries are summed by the csr conversion.
        self.counts_ = sp.coo_matrix((data, (rows, cols)), shape=shape).tocsr()
        self.n_compounds_ = len(compounds)

        matrix = self.normalized_matrix()
        u, s, _ = np.linalg.svd(matrix.toarray(), full_matrices=False)
        # Deterministic signs: the largest-magnitude entry of each left singular vector > 0.
        signs = np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(u.shape[1])])
        signs[signs == 0] = 1.0
        self.left_singular_vectors_ = u * signs
        self.singular_values_ = s
        tol = s.max(initial=0.0) * max(shape) * np.finfo(np.float64).eps
        self.rank_ = int(np.sum(s > tol))
        return self

    def normalized_matrix(self) -> sp.csr_matrix:
        """The count matrix with each row scaled according to ``norm``."""
        counts = self.counts_
        if self.norm == "none":
            return counts.copy()
        if self.norm == "l2":
            scale = np.sqrt(np.asarray(counts.multiply(counts).sum(axis=1)).ravel())
        else:
            scale = np.asarray(counts.sum(axis=1)).ravel()
        scale[scale == 0] = 1.0
        return sp.diags(1.0 / scale) @ counts

    def capped_dim(self, dim: int) -> int:
        """``dim`` capped by the numerical rank."""
        if dim < 1:
            raise ValueError(f"dimension must be positive, got {dim}")
        return min(int(dim), self.rank_)

    def vectors(self, dim: int) -> tuple[np.ndarray, int]:
        """Element vectors ``U_k D_k`` (rows follow ``elements_``) and the dimension ``k`` used."""
        k = self.capped_dim(dim)
        return self.left_singular_vectors_[:, :k] * self.singular_values_[:k], k

    def explained_variance_ratio(self, dim: int) -> float:
        """Fraction of the squared Frobenius norm of the normalised matrix kept by ``k`` axes."""
        k = self.capped_dim(dim)
        energy = np.square(self.singular_values_)
        return float(energy[:k].sum() / energy.sum())


def _git_commit() -> dict[str, Any]:
    commit, status = git_state()
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def hardware_record() -> dict[str, Any]:
    """Platform, CPU model, core count and Python/numpy versions."""
    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def build_embedding(
    model: Atom2Vec, dim: int, metadata: dict[str, Any] | None = None, *, pad: bool = False
):
    """Wrap ``U_k D_k`` as an ``ElementEmbedding`` named ``"atom2vec"``.

    Parameters
    ----------
    model
        A fitted :class:`Atom2Vec`.
    dim
        Requested dimension.
    metadata
        Merged into the method record (dimension, rank cap, explained variance).
    pad
        When ``dim`` exceeds the rank ``r``, keep the requested width: columns ``r+1..dim`` of
        ``U_k D_k`` multiply singular values that are exactly zero, so they are written as
        zeros and the file still has ``dim`` columns (the registry and CGCNN input layers
        expect the nominal dimension). Without ``pad`` the vectors have ``r`` columns.
    """
    from crysatom_featurizers.embeddings import ElementEmbedding

    vectors, k = model.vectors(dim)
    if pad and k < dim:
        vectors = np.hstack([vectors, np.zeros((vectors.shape[0], dim - k))])
    meta: dict[str, Any] = {
        "source": SOURCE,
        "citation": CITATION,
        "description": (
            "Atom2Vec (Zhou et al. 2018): rows of U_k D_k from the SVD of the row-normalised "
            "element x environment count matrix of the corpus compositions; not L2-normalised"
        ),
        "license": "MIT",
        "requested_dim": int(dim),
        "informative_dim": k,
        "dim_capped_by_rank": k < int(dim),
        "zero_padded_columns": int(vectors.shape[1] - k),
        "matrix_rank": model.rank_,
        "n_environments": len(model.environments_),
        "n_compounds": model.n_compounds_,
        "count": model.count,
        "row_normalization": model.norm,
        "environment": "'(n)' + other elements with counts, alphabetical, from reduced formulas",
        "explained_variance_ratio": round(model.explained_variance_ratio(dim), 6),
        "singular_values": [round(float(x), 6) for x in model.singular_values_[:k]],
        "vector_normalization": "none (U_k D_k as in the paper)",
    }
    meta.update(metadata or {})
    mapping = {el: vectors[i] for i, el in enumerate(model.elements_)}
    # dim, n_elements and checksum are recomputed from the vectors by ElementEmbedding.
    return ElementEmbedding.from_dict(mapping, name="atom2vec", metadata=meta)


def train_atom2vec(
    dims: Sequence[int] = DEFAULT_DIMS,
    out_dir: str | os.PathLike = DEFAULT_OUT,
    *,
    sources: Sequence[str] = DEFAULT_SOURCES,
    data_dir: str | os.PathLike | None = None,
    norm: str = "l2",
    count: str = "formula",
    use_cache: bool = True,
    pad: bool = False,
    progress: bool = False,
) -> list[Path]:
    """Fit Atom2Vec on the de-duplicated shared corpus and write ``atom2vec_{dim}.json`` files.

    Parameters
    ----------
    dims
        Requested dimensions; each is capped by the matrix rank, the file keeps the requested
        dimension in its name and records the cap.
    out_dir
        Output folder.
    sources, data_dir
        Corpus sources and data folder (see :func:`training.corpus.load_corpus`).
    norm, count
        See :class:`Atom2Vec`.
    use_cache
        Reuse the cached corpus index in ``training/cache`` (formulas and keys only).
    pad
        Keep the requested width when it exceeds the rank (zero columns, see
        :func:`build_embedding`); without it a capped file holds only the informative columns.
        Either way the file is named after the requested dimension.
    progress
        Show progress bars while decoding the corpus.

    Returns
    -------
    list of pathlib.Path
        The written files.
    """
    start = time.perf_counter()
    cache_dir = REPO_ROOT / "training" / "cache" if use_cache else None
    index = load_corpus_index(sources, data_dir, cache_dir=cache_dir, progress=progress)
    corpus = index.attrs["corpus"]
    cached = bool(index.attrs.get("from_cache", False))
    model = Atom2Vec(norm=norm, count=count).fit(index["formula"])
    fit_time = time.perf_counter() - start
    common = {
        "corpus": " + ".join(corpus["names"]),
        "corpus_files": corpus.get("files", {}),
        "corpus_size": corpus["size"],
        "corpus_sizes": corpus["sizes_after_dedupe"],
        "corpus_size_before_dedupe": corpus["size_before_dedupe"],
        "corpus_sizes_before_dedupe": corpus["sizes_before_dedupe"],
        "corpus_dedupe_key": corpus["dedupe_key"],
        "corpus_checksum": corpus["checksum"],
        "hardware": hardware_record(),
        "package_version": package_version(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python -m training.atom2vec " + " ".join(sys.argv[1:]),
        **_git_commit(),
    }
    written = []
    for dim in dims:
        # Wall time of corpus loading (or cache read) plus the fit; the write itself is negligible.
        record = {**common, "wall_time_s": round(fit_time, 2), "corpus_index_cached": cached}
        embedding = build_embedding(model, dim, record, pad=pad)
        name = f"atom2vec_{dim}.json"
        # to_json writes a temporary file in the same folder and renames it (atomic).
        written.append(embedding.to_json(Path(out_dir) / name))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m training.atom2vec",
        description="Fit Atom2Vec (Zhou et al. 2018) on the shared corpus compositions.",
    )
    parser.add_argument("--dims", type=int, nargs="+", default=list(DEFAULT_DIMS))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--sources", nargs="+", default=list(DEFAULT_SOURCES))
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--norm", choices=["l2", "l1", "none"], default="l2")
    parser.add_argument("--count", choices=["formula", "structure"], default="formula")
    parser.add_argument("--no-cache", action="store_true", help="re-decode the corpus")
    parser.add_argument(
        "--pad",
        action="store_true",
        help="zero-pad rank-capped vectors to the requested width (default: informative columns only)",
    )
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    # The SVD is small; one BLAS thread keeps the shared cores free.
    with threadpool_limits(limits=1):
        paths = train_atom2vec(
            args.dims,
            args.out,
            sources=args.sources,
            data_dir=args.data_dir,
            norm=args.norm,
            count=args.count,
            use_cache=not args.no_cache,
            pad=args.pad,
            progress=args.progress,
        )
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
