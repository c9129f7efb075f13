"""Factories of the built-in embeddings.

* ``onehot``: one-hot of the element, H..Lr (Z = 1-103), 103 dimensions.
* ``random``: N(0, 1) vectors for H..Fm (Z = 1-100), any dimension, seeded.
* ``cgcnn``: see :mod:`crysatom_featurizers.embeddings.cgcnn`.
* ``skipatom``, ``mat2vec``, ``megnet16``, ``magpie``, ``matscholar`` and the foundation-model
  tables ``chgnet``, ``mace_mp0``, ``orb_v2``, ``sevennet``, ``crystallm``, ``chemeleon``,
  ``matscibert``: read in place from the data files shipped by the ``elementembeddings``
  package (MIT), with their leak class (:data:`LEAK_CLASSES`).
* ``crysatom``, ``atom2vec``, ``uae``: vectors produced by this project's ``training/``
  scripts and stored as ``data/{name}_{dim}.json`` (or ``.json.gz``).
"""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np

from .core import ELEMENT_SYMBOLS, ElementEmbedding, EmbeddingFileError

__all__ = [
    "DATA_DIR",
    "EmbeddingNotAvailableError",
    "ONEHOT_MAX_Z",
    "RANDOM_MAX_Z",
    "TRAINED_EMBEDDINGS",
    "ELEMENTEMBEDDINGS_SOURCES",
    "LEAK_CLASSES",
    "leak_summary",
    "onehot_embedding",
    "random_embedding",
    "elementembeddings_embedding",
    "trained_embedding",
    "trained_dims",
    "vector_file_path",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
ONEHOT_MAX_Z = 103  # H..Lr
RANDOM_MAX_Z = 100  # H..Fm, the same elements as cgcnn

ELEMENTEMBEDDINGS_CITATION = (
    "A. Onwuli, A. V. Hegde, K. V. T. Nguyen, K. T. Butler and A. Walsh, "
    "Digital Discovery 2, 1558 (2023), doi:10.1039/D3DD00121K"
)


class EmbeddingNotAvailableError(FileNotFoundError):
    """The vector file of a trained embedding has not been generated yet."""


# ------------------------------------------------------------------ onehot
def onehot_embedding() -> ElementEmbedding:
    """One-hot vectors: element ``Z`` has a 1 in column ``Z - 1`` (H..Lr, 103 dims)."""
    symbols = list(ELEMENT_SYMBOLS[:ONEHOT_MAX_Z])
    metadata = {
        "source": "generated (identity matrix)",
        "citation": None,
        "corpus": None,
        "corpus_size": None,
        "license": "MIT (this package)",
        "description": "one-hot of the element; column i is element Z = i + 1, H..Lr",
    }
    return ElementEmbedding("onehot", symbols, np.eye(len(symbols), dtype=np.float32), metadata)


# ------------------------------------------------------------------ random
def random_embedding(dim: int = 200, seed: int = 0) -> ElementEmbedding:
    """Standard-normal random vectors, reproducible across platforms.

    ``numpy.random.Generator(numpy.random.PCG64(seed)).standard_normal((100, dim))``
    in float64, cast to float32; row ``i`` is element ``Z = i + 1`` (H..Fm). As
    in the CrysAtom paper's random baseline (footnote 5), the vectors carry no
    chemistry.

    Parameters
    ----------
    dim : int, default 200
        Vector length (any positive integer).
    seed : int, default 0
        Seed of the PCG64 bit generator.
    """
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"random embedding: dim must be a positive integer, got {dim!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"random embedding: seed must be a non-negative integer, got {seed!r}")
    generator = np.random.Generator(np.random.PCG64(int(seed)))
    vectors = generator.standard_normal((RANDOM_MAX_Z, int(dim))).astype(np.float32)
    metadata = {
        "source": "generated: numpy.random.Generator(PCG64(seed)).standard_normal",
        "citation": "CrysAtom random baseline: arXiv:2409.04737 (footnote 5)",
        "corpus": None,
        "corpus_size": None,
        "license": "MIT (this package)",
        "description": "N(0, 1) random vectors, H..Fm",
        "seed": int(seed),
        "numpy_version": np.__version__,
    }
    return ElementEmbedding("random", list(ELEMENT_SYMBOLS[:RANDOM_MAX_Z]), vectors, metadata)


# ------------------------------------------------------- elementembeddings
# name -> (file, dim, provenance)
ELEMENTEMBEDDINGS_SOURCES: dict[str, dict[str, Any]] = {
    "skipatom": {
        "file": "skipatom_20201009_induced.csv",
        "dim": 200,
        "citation": "L. M. Antunes, R. Grau-Crespo and K. T. Butler, npj Comput. Mater. 8, 44 "
        "(2022), doi:10.1038/s41524-022-00729-3",
        "corpus": "Materials Project structures (2020-10-09 snapshot); 'induced' vectors",
        "corpus_size": None,
        "original_license": "MIT (lantunes/skipatom)",
        "description": "SkipAtom: atom co-occurrence in crystal-structure graphs",
        "leak": "label-free",
    },
    "mat2vec": {
        "file": "mat2vec.csv",
        "dim": 200,
        "citation": "V. Tshitoyan et al., Nature 571, 95 (2019), doi:10.1038/s41586-019-1335-8",
        "corpus": "materials-science abstracts (word2vec)",
        "corpus_size": 3300000,
        "original_license": "MIT (materialsintelligence/mat2vec)",
        "description": "mat2vec word embeddings of element names from the literature",
        "leak": "label-free",
    },
    "megnet16": {
        "file": "megnet16.json",
        "dim": 16,
        "citation": "C. Chen, W. Ye, Y. Zuo, C. Zheng and S. P. Ong, Chem. Mater. 31, 3564 "
        "(2019), doi:10.1021/acs.chemmater.9b01294",
        "corpus": "Materials Project formation energies (MEGNet element embedding layer)",
        "corpus_size": None,
        "original_license": "BSD-3-Clause (materialsvirtuallab/megnet)",
        "description": "MEGNet 16-dim element embedding layer",
        "leak": "mp-formation-energy",
    },
    "magpie": {
        "file": "magpie.csv",
        "dim": 22,
        "citation": "L. Ward, A. Agrawal, A. Choudhary and C. Wolverton, npj Comput. Mater. 2, "
        "16028 (2016), doi:10.1038/npjcompumats.2016.28",
        "corpus": "tabulated element properties (no training); raw, unscaled values",
        "corpus_size": None,
        "original_license": "see the Magpie project; file from Kaaiian/CBFV via elementembeddings",
        "description": "Magpie: 22 raw element properties (different units, not standardized)",
        "leak": "label-free",
    },
    "matscholar": {
        "file": "matscholar-embedding.json",
        "dim": 200,
        "citation": "L. Weston et al., J. Chem. Inf. Model. 59, 3692 (2019), "
        "doi:10.1021/acs.jcim.9b00470",
        "corpus": "materials-science abstracts (Matscholar word embeddings)",
        "corpus_size": None,
        "original_license": "see lrcfmd/ElMD; file via elementembeddings",
        "description": "Matscholar element embeddings (matminer's matscholar_el)",
        "leak": "label-free",
    },
    # Element tables read off foundation models: atom-level features averaged per element
    # over Materials Project structures (elementembeddings 0.8). The potentials were trained
    # on MPtrj (MP relaxation energies, forces, stresses, magnetic moments), so their
    # knowledge has seen the MP formation energies of the benchmark crystals.
    "chgnet": {
        "file": "chgnet.csv",
        "dim": 64,
        "citation": "B. Deng et al., Nat. Mach. Intell. 5, 1031 (2023), "
        "doi:10.1038/s42256-023-00716-3",
        "corpus": "MPtrj: ~1.58 M frames of Materials Project relaxations (~146 k materials): "
        "energies, forces, stresses, magnetic moments",
        "corpus_size": 1580395,
        "original_license": "modified BSD (CederGroupHub/chgnet)",
        "description": "CHGNet 0.3.0 node features (last atom convolution), averaged per "
        "element over MP structures",
        "leak": "potential",
    },
    "mace_mp0": {
        "file": "mace_mp0.csv",
        "dim": 128,
        "citation": "I. Batatia et al., arXiv:2401.00096 (2023), A foundation model for "
        "atomistic materials chemistry",
        "corpus": "MPtrj: ~1.58 M frames of Materials Project relaxations (energies, forces, "
        "stresses)",
        "corpus_size": 1580395,
        "original_license": "see ACEsuit/mace-mp (MACE-MP-0 medium)",
        "description": "MACE-MP-0 (medium) scalar invariants of the last interaction layer, "
        "averaged per element over MP structures",
        "leak": "potential",
    },
    "orb_v2": {
        "file": "orb_v2.csv",
        "dim": 256,
        "citation": "M. Neumann et al., arXiv:2410.22570 (2024), Orb: a fast, scalable neural "
        "network potential",
        "corpus": "MPtrj and Alexandria (PBE energies, forces, stresses)",
        "corpus_size": None,
        "original_license": "Apache-2.0 (orbital-materials/orb-models)",
        "description": "ORB-v2 node features at the input of the energy head, averaged per "
        "element over MP structures",
        "leak": "potential",
    },
    "sevennet": {
        "file": "sevennet.csv",
        "dim": 128,
        "citation": "Y. Park et al., J. Chem. Theory Comput. 20, 4857 (2024), "
        "doi:10.1021/acs.jctc.4c00190",
        "corpus": "MPtrj: ~1.58 M frames of Materials Project relaxations (energies, forces, "
        "stresses)",
        "corpus_size": 1580395,
        "original_license": "MIT (MDIL-SNU/SevenNet)",
        "description": "SevenNet-0 scalar (l = 0) node features of the last equivariant gate, "
        "averaged per element over MP structures",
        "leak": "potential",
    },
    "crystallm": {
        "file": "crystallm_v24c.dim512_atom_vectors.csv",
        "dim": 512,
        "citation": "L. M. Antunes, K. T. Butler and R. Grau-Crespo, Crystal structure "
        "generation with autoregressive large language modeling, arXiv:2307.04340",
        "corpus": "CIF files of MP, OQMD and NOMAD structures (a language model of the text; "
        "no property labels)",
        "corpus_size": 2300000,
        "original_license": "MIT (lantunes/CrystaLLM)",
        "description": "CrystaLLM (v24c) 512-dim atom-token vectors",
        "leak": "label-free",
    },
    "chemeleon": {
        "file": "chemeleon.csv",
        "dim": 512,
        "citation": "H. Park, A. Onwuli and A. Walsh, Nat. Commun. (2025), "
        "doi:10.1038/s41467-025-59636-y",
        "corpus": "MP-20 structures with text of their composition and crystal system "
        "(a generative model; no property labels)",
        "corpus_size": 45231,
        "original_license": "MIT (hspark1212/chemeleon)",
        "description": "Chemeleon-DNG node features after message passing at t = 0, averaged "
        "per element over MP-20 structures",
        "leak": "label-free",
    },
    "matscibert": {
        "file": "matscibert.csv",
        "dim": 768,
        "citation": "T. Gupta, M. Zaki, N. M. A. Krishnan and Mausam, npj Comput. Mater. 8, "
        "102 (2022), doi:10.1038/s41524-022-00784-w",
        "corpus": "materials-science papers (a BERT language model)",
        "corpus_size": None,
        "original_license": "MIT (M3RG-IITD/MatSciBERT)",
        "description": "MatSciBERT token-embedding vectors of the element symbols",
        "leak": "label-free",
    },
}

#: What each leak class means for the five benchmark properties. A cell is *seen* when the
#: table's training used that property's labels of the benchmark crystals, *related* when it
#: used labels of overlapping compounds or of a closely related quantity, *unseen* otherwise.
LEAK_CLASSES: dict[str, dict[str, str]] = {
    "label-free": {
        "formation_energy_per_atom": "unseen",
        "formation_energy_peratom": "unseen",
        "mbj_bandgap": "unseen",
        "bulk_modulus_kv": "unseen",
        "shear_modulus_gv": "unseen",
    },
    # MPtrj holds the MP energies of the MP benchmark crystals; JARVIS formation energies are
    # energies of overlapping compounds under another functional; stresses (not moduli) were
    # labels.
    "potential": {
        "formation_energy_per_atom": "seen",
        "formation_energy_peratom": "related",
        "mbj_bandgap": "unseen",
        "bulk_modulus_kv": "unseen",
        "shear_modulus_gv": "unseen",
    },
    # MEGNet's embedding layer was trained on MP formation energies (2018).
    "mp-formation-energy": {
        "formation_energy_per_atom": "seen",
        "formation_energy_peratom": "related",
        "mbj_bandgap": "unseen",
        "bulk_modulus_kv": "unseen",
        "shear_modulus_gv": "unseen",
    },
    # uae: trained on JARVIS E_f and band gap and MP E_f with every benchmark validation and
    # test formula removed (no label of a benchmark crystal; the properties were tasks).
    "label-trained, leak-free": {
        "formation_energy_per_atom": "seen (task, test formulas removed)",
        "formation_energy_peratom": "seen (task, test formulas removed)",
        "mbj_bandgap": "seen (task, test formulas removed)",
        "bulk_modulus_kv": "unseen",
        "shear_modulus_gv": "unseen",
    },
}


def leak_summary(leak: str) -> str:
    """One line for the registry table: the leak class and its cells."""
    cells = LEAK_CLASSES[leak]
    short = {
        "formation_energy_per_atom": "MP E_f",
        "formation_energy_peratom": "JARVIS E_f",
        "mbj_bandgap": "band gap",
        "bulk_modulus_kv": "K",
        "shear_modulus_gv": "G",
    }
    return f"{leak}: " + ", ".join(f"{short[p]} {c.split(' (')[0]}" for p, c in cells.items())


def _elementembeddings_dir() -> Path:
    spec = importlib.util.find_spec("elementembeddings")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the 'elementembeddings' package is needed for this embedding: "
            "pip install elementembeddings"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "element_representations"


def _read_table(path: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """Read an elementembeddings CSV (element column + numbers) or JSON ({symbol: vector})."""
    if path.suffix == ".json":
        with path.open(encoding="utf-8") as stream:
            mapping = json.load(stream)
        keys = list(mapping)
        if not keys:
            raise EmbeddingFileError(path, "no vectors")
        values = np.asarray([mapping[k] for k in keys], dtype=np.float64)
        return keys, values, []
    with path.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.reader(stream))
    header, body = rows[0], [r for r in rows[1:] if r]
    symbols = [r[0].strip() for r in body]
    values = np.array(
        [[float(c) if c.strip() else np.nan for c in r[1:]] for r in body], dtype=np.float64
    )
    return symbols, values, [h.strip() for h in header[1:]]


def elementembeddings_embedding(name: str) -> ElementEmbedding:
    """Load one of the embeddings shipped by ``elementembeddings``.

    The data files are read directly (without importing ``elementembeddings``,
    whose import is slow) and give the same numbers as
    ``elementembeddings.core.Embedding.load_data(name)``. Entries that are not
    chemical elements (e.g. megnet16's ``"Null"`` row) and elements whose
    vector is not finite are dropped; both are listed in the metadata.
    """
    info = ELEMENTEMBEDDINGS_SOURCES[name]
    path = _elementembeddings_dir() / info["file"]
    symbols, values, feature_names = _read_table(path)
    known = set(ELEMENT_SYMBOLS)
    not_elements = [s for s in symbols if s not in known]
    finite = np.isfinite(values).all(axis=1)
    non_finite = [s for s, ok in zip(symbols, finite) if s in known and not ok]
    keep = [i for i, s in enumerate(symbols) if s in known and finite[i]]
    import importlib.metadata

    try:
        version = importlib.metadata.version("elementembeddings")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    metadata = {
        "source": f"elementembeddings {version}, data/element_representations/{info['file']}",
        "citation": info["citation"],
        "corpus": info["corpus"],
        "corpus_size": info["corpus_size"],
        "license": "MIT (elementembeddings package, which redistributes these vectors)",
        "original_license": info["original_license"],
        "package_citation": ELEMENTEMBEDDINGS_CITATION,
        "description": info["description"],
        "leak_class": info["leak"],
        "leak": LEAK_CLASSES[info["leak"]],
        "dropped_not_elements": not_elements,
        "dropped_non_finite": non_finite,
    }
    if feature_names and not all(f.isdigit() for f in feature_names):
        metadata["feature_names"] = feature_names
    try:
        return ElementEmbedding(name, [symbols[i] for i in keep], values[keep], metadata)
    except ValueError as exc:
        raise EmbeddingFileError(path, str(exc)) from None


# ---------------------------------------------------------- trained files
#: The vectors of the generic featurizers (``ElementEmbedding*``) and GNN estimators when no
#: embedding is given: ``uae``, which beat ``crysatom`` on validation in both workflows (CGCNN
#: input at n = 100, 300 and 1,000; composition statistics + boosting at n = 100 and 300).
#: The ``CrysAtom*`` featurizers always use ``"crysatom"``.
DEFAULT_EMBEDDING = "uae"

# name -> nominal dims, default dim, provenance and the command that writes the files
TRAINED_EMBEDDINGS: dict[str, dict[str, Any]] = {
    "crysatom": {
        "dims": (50, 100, 200, 1200),
        "default_dim": 1200,
        "command": "python -m training.pretrain (50, 100, 200: final layer); python -m "
        "training.readouts and python -m training.ship_vectors (1200)",
        "citation": "CrysAtom: arXiv:2409.04737, doi:10.48550/arXiv.2409.04737",
        "description": "CrysAtom: element vectors from a self-supervised CGCNN pretrained on "
        "crystal graphs (this repository's training/). Default (1200): the element averages "
        "of the input map and of each of the 5 convolutions of the 200-wide encoder, side by "
        "side, the read-out chosen on validation; 50, 100, 200: the final layer of the "
        "50-, 100- and 200-wide encoders (also served as crysatom_final)",
    },
    "crysatom_final": {
        "dims": (50, 100, 200),
        "default_dim": 200,
        "file_stem": "crysatom",  # the final-layer files of crysatom
        "command": "python -m training.pretrain",
        "citation": "CrysAtom: arXiv:2409.04737, doi:10.48550/arXiv.2409.04737",
        "description": "CrysAtom final-layer read-out (the paper's method): element averages "
        "of the last convolution of the pretrained encoder",
    },
    "uae": {
        "dims": (256, 64),
        "default_dim": 256,
        "command": "python -m training.supervised (front-ends), then python -m "
        "training.ship_label_vectors (the validation winner)",
        "citation": "Universal atomic embeddings: L. Jin et al., arXiv:2401.09755 (2024)",
        "description": "element vectors learned from property labels (JARVIS formation energy "
        "and MBJ band gap, MP formation energy; multi-task), leak-free: no crystal whose reduced "
        "formula is a benchmark validation or test formula; the moduli are unseen. Default "
        "(256): the element averages of the input map and the 3 convolutions of the label-"
        "trained CGCNN side by side, chosen on validation",
        "leak": "label-trained, leak-free",
    },
    "atom2vec": {
        "dims": (50, 100, 200),
        "default_dim": 200,
        "command": "python -m training.atom2vec",
        "citation": "Q. Zhou et al., PNAS 115, E6411 (2018), doi:10.1073/pnas.1801181115",
        "description": "Atom2Vec: element vectors from atom-environment co-occurrence, trained "
        "on the same corpus (this repository's training/)",
    },
}


def vector_file_path(name: str, dim: int, *, compressed: bool = False) -> Path:
    """Where the shipped vector file of a trained embedding lives (``data/{name}_{dim}.json``)."""
    return DATA_DIR / f"{name}_{int(dim)}.json{'.gz' if compressed else ''}"


def _existing_file(name: str, dim: int) -> Path | None:
    for compressed in (False, True):
        path = vector_file_path(name, dim, compressed=compressed)
        if path.is_file():
            return path
    return None


def _file_stem(name: str) -> str:
    """Name in the file names (and inside the files) of a trained embedding."""
    return str(TRAINED_EMBEDDINGS[name].get("file_stem", name))


def trained_dims(name: str) -> list[int]:
    """The nominal dimensions of ``name`` whose vector files exist."""
    stem = _file_stem(name)
    return [d for d in TRAINED_EMBEDDINGS[name]["dims"] if _existing_file(stem, d) is not None]


def _requested_dim(embedding: ElementEmbedding) -> int:
    """The dimension a file was made for: ``metadata["requested_dim"]`` when the method's rank
    capped the vectors below it (Atom2Vec on ~90 elements), otherwise ``embedding.dim``."""
    requested = embedding.metadata.get("requested_dim")
    if isinstance(requested, int) and not isinstance(requested, bool) and requested > embedding.dim:
        return requested
    return embedding.dim


def trained_embedding(name: str, dim: int) -> ElementEmbedding:
    """Load a trained embedding's vector file and check that it is what it claims to be.

    A file may hold fewer than ``dim`` columns when the training method's rank
    capped it (``metadata["requested_dim"] == dim``, ``dim_capped_by_rank``);
    Atom2Vec on ~90 elements cannot give more than ~90 dimensions.

    Raises
    ------
    EmbeddingNotAvailableError
        If the file has not been generated.
    EmbeddingFileError
        If the file is invalid, or holds another embedding name or dimension.
    """
    stem = _file_stem(name)
    path = _existing_file(stem, dim)
    if path is None:
        info = TRAINED_EMBEDDINGS[name]
        raise EmbeddingNotAvailableError(
            f"the {name!r} vectors of dimension {dim} have not been generated: "
            f"{vector_file_path(stem, dim)} does not exist. They are produced by this "
            f"repository's training scripts ({info['command']}); generated dimensions: "
            f"{trained_dims(name) or 'none'}"
        )
    embedding = ElementEmbedding.from_json(path)
    if embedding.name != stem or _requested_dim(embedding) != dim:
        raise EmbeddingFileError(
            path,
            f"holds embedding {embedding.name!r} of dimension {embedding.dim}, "
            f"expected {stem!r} of dimension {dim}",
        )
    return embedding if stem == name else embedding.renamed(name)
