"""Speed of the element-embedding featurizers against matminer and elementembeddings.

Run from the repository root (needs ``../shared/data``)::

    python benchmarks/bench_featurizers.py [--repeats 3] [--matminer-rows 1000]

Everything runs in one process, one thread of Python work each, on the same rows:

* composition: 5,000 JARVIS-DFT formulas (random sample, seed 0, from the formulas whose
  elements the 200-dim embedding covers, because ``elementembeddings`` stops the whole batch
  on a missing element), 200 dims x 5 statistics;
* site: every site of 500 JARVIS structures (same sampling), 200 dims;
* the composition featurizers a user gets without arguments (the generic default and
  ``CrysAtomCompositionFeaturizer()``), on the same formulas, at their default widths.

Timings are the median of ``--repeats`` runs. matminer's ``ElementProperty`` is timed on the
first ``--matminer-rows`` compositions and scaled linearly to 5,000. Results go to
``benchmarks/results/featurizers.json`` and ``benchmarks/results/featurizers.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
JARVIS = REPO.parent / "shared" / "data" / "jarvis_dft_3d_2021.json.gz"
RESULTS = REPO / "benchmarks" / "results"
N_COMPOSITIONS = 5000
N_STRUCTURES = 500
SEED = 0


def timed(function, repeats: int, setup=None) -> tuple[float, list[float], object]:
    """Median wall time (s) of ``function()`` over ``repeats`` runs, the runs, last result.

    The CPU time of each run (``time.process_time``) is appended to ``CPU_TIMES``; on a
    shared, oversubscribed machine it is the steadier of the two measures.
    """
    times = []
    cpu = []
    result = None
    for _ in range(repeats):
        if setup is not None:
            setup()
        start, start_cpu = time.perf_counter(), time.process_time()
        result = function()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    CPU_TIMES.append(cpu)
    return statistics.median(times), times, result


CPU_TIMES: list[list[float]] = []


@contextlib.contextmanager
def quiet():
    """Silence the progress bars and prints of the comparison libraries."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


# --------------------------------------------------------------------------- numpy bound
_PAIR = re.compile(r"([A-Z][a-z]?)(\d*\.?\d*)")


def padded_fractions(compositions, max_z: int = 118):
    """(n, K) atomic numbers, fractions and mask from pymatgen Compositions (untimed setup)."""
    k_max = max(len(c) for c in compositions)
    z = np.zeros((len(compositions), k_max), dtype=np.int64)
    fractions = np.zeros((len(compositions), k_max))
    for i, composition in enumerate(compositions):
        items = list(composition.fractional_composition.items())
        z[i, : len(items)] = [element.Z for element, _ in items]
        fractions[i, : len(items)] = [amount for _, amount in items]
    return z, fractions, z > 0


def numpy_bound(table: np.ndarray, z: np.ndarray, fractions: np.ndarray, mask: np.ndarray):
    """mean, std_dev, min, max, range from a padded fraction matrix: gather + reduce only."""
    values = table[z]  # (n, K, d); row 0 of the table is zeros for the padding
    mean = np.einsum("nk,nkd->nd", fractions, values)
    squared = (values - mean[:, None, :]) ** 2
    denominator = 1.0 - np.sum(fractions**2, axis=1)
    single = denominator <= 0
    denominator[single] = 1.0
    std = np.sqrt(np.einsum("nk,nkd->nd", fractions, squared) / denominator[:, None])
    std[single] = 0.0
    low = np.where(mask[:, :, None], values, np.inf).min(axis=1)
    high = np.where(mask[:, :, None], values, -np.inf).max(axis=1)
    return np.concatenate([mean, std, low, high, high - low], axis=1)


# --------------------------------------------------------------------------- main
def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of the fast methods")
    parser.add_argument(
        "--slow-repeats", type=int, default=3, help="runs of matminer and elementembeddings"
    )
    parser.add_argument("--matminer-rows", type=int, default=1000)
    parser.add_argument("--site-matminer-structures", type=int, default=100)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    load_at_start = loadavg()

    from matminer.featurizers.composition import ElementProperty
    from matminer.featurizers.site import SiteElementalProperty
    from matminer.utils.io import load_dataframe_from_json
    from pymatgen.core import Composition

    from crysatom_featurizers import embeddings
    from crysatom_featurizers.featurizers import (
        CrysAtomCompositionFeaturizer,
        ElementEmbeddingCompositionFeaturizer,
        ElementEmbeddingSiteFeaturizer,
        ElementEmbeddingStructureFeaturizer,
        EmbeddingElementData,
        clear_formula_cache,
    )

    if not JARVIS.exists():
        sys.exit(f"shared data not found: {JARVIS}")
    try:
        embedding = embeddings.load("crysatom", 200)
        note = "crysatom 200-dim vectors"
    except Exception as error:  # vectors not trained yet
        embedding = embeddings.load("skipatom", 200)
        note = f"skipatom 200-dim vectors (crysatom unavailable: {type(error).__name__})"
    print(f"embedding: {note}")

    start = time.perf_counter()
    data = load_dataframe_from_json(str(JARVIS), pbar=False)
    print(f"loaded {len(data)} JARVIS rows in {time.perf_counter() - start:.1f} s")
    # elementembeddings raises on a missing element, so keep formulas both embeddings cover
    covered = set(embedding.symbols) & set(embeddings.load("skipatom", 200).symbols)
    compositions_all = [Composition(f) for f in data["formula"]]
    ok = np.array([{e.symbol for e in c.elements} <= covered for c in compositions_all])
    pool = data[ok]
    sample = pool.sample(N_COMPOSITIONS, random_state=SEED)
    formulas = sample[["formula"]].reset_index(drop=True)
    formula_list = formulas["formula"].tolist()
    compositions = [Composition(f) for f in formula_list]
    structures = pool.sample(N_STRUCTURES, random_state=SEED)[["structure"]].reset_index(drop=True)
    n_sites = int(sum(len(s) for s in structures["structure"]))
    print(f"{len(formulas)} formulas, {N_STRUCTURES} structures with {n_sites} sites")

    stats = ("mean", "std_dev", "min", "max", "range")
    ours = ElementEmbeddingCompositionFeaturizer(embedding, stats=stats)
    results: dict[str, dict] = {}

    def record(key, label, seconds, times, rows, extra=None, scale=1.0):
        cpu_seconds = statistics.median(CPU_TIMES[-1]) * scale
        results[key] = {
            "label": label,
            "seconds": seconds,
            "times": times,
            "cpu_seconds": cpu_seconds,
            "rows": rows,
            "rows_per_s": rows / seconds if seconds else None,
            **(extra or {}),
        }
        print(f"{label:60s} {seconds * 1e3:10.1f} ms wall {cpu_seconds * 1e3:10.1f} ms cpu")

    # ours, composition -------------------------------------------------------------
    ours.featurize_dataframe(formulas.iloc[:10], "formula")  # resolve the embedding
    seconds, times, out = timed(
        lambda: ours.featurize_dataframe(formulas, "formula"), args.repeats, clear_formula_cache
    )
    record(
        "ours_dataframe_cold",
        "ours featurize_dataframe (cold formula cache)",
        seconds,
        times,
        len(formulas),
    )
    reference = out[ours.feature_labels()].to_numpy()
    seconds, times, _ = timed(lambda: ours.featurize_dataframe(formulas, "formula"), args.repeats)
    record(
        "ours_dataframe_warm",
        "ours featurize_dataframe (warm formula cache)",
        seconds,
        times,
        len(formulas),
    )
    seconds, times, _ = timed(
        lambda: ours.featurize_many(formula_list), args.repeats, clear_formula_cache
    )
    record(
        "ours_many_cold",
        "ours featurize_many, list of str (cold cache)",
        seconds,
        times,
        len(formulas),
    )
    seconds, times, _ = timed(lambda: ours.featurize_many(compositions), args.repeats)
    record(
        "ours_many_compositions",
        "ours featurize_many, list of Composition",
        seconds,
        times,
        len(formulas),
    )

    # what a user gets without arguments (the generic default and the CrysAtom preset) ----
    defaults = (
        (
            "default_generic",
            f"ElementEmbeddingCompositionFeaturizer() ({embeddings.DEFAULT_EMBEDDING}, default dim)",
            ElementEmbeddingCompositionFeaturizer(stats=stats),
        ),
        (
            "default_crysatom",
            "CrysAtomCompositionFeaturizer() (crysatom, default dim)",
            CrysAtomCompositionFeaturizer(stats=stats),
        ),
    )
    for key, label, featurizer in defaults:
        try:
            featurizer.featurize_dataframe(formulas.iloc[:10], "formula")
        except embeddings.EmbeddingNotAvailableError as error:
            print(f"{label}: skipped ({error})")
            continue
        columns = len(featurizer.feature_labels())
        seconds, times, _ = timed(
            lambda f=featurizer: f.featurize_dataframe(formulas, "formula"),
            args.repeats,
            clear_formula_cache,
        )
        record(key, f"{label}, {columns:,} columns", seconds, times, len(formulas))

    # numpy bound -------------------------------------------------------------------
    table = np.nan_to_num(embedding.lookup_table()[0].astype(np.float64), nan=0.0)
    z, fractions, mask = padded_fractions(compositions)
    seconds, times, bound = timed(lambda: numpy_bound(table, z, fractions, mask), args.repeats)
    record(
        "numpy_bound",
        "bare numpy bound (padded fractions given; gather + reduce)",
        seconds,
        times,
        len(formulas),
    )
    agreement = float(np.max(np.abs(bound - reference)))

    # elementembeddings -------------------------------------------------------------
    from elementembeddings.composition import composition_featuriser
    from elementembeddings.core import Embedding

    ee_embedding = Embedding.load_data("skipatom")
    ee_stats = ["mean", "variance", "minpool", "maxpool", "range"]
    with quiet():
        seconds, times, _ = timed(
            lambda: composition_featuriser(formulas, embedding=ee_embedding, stats=ee_stats),
            args.slow_repeats,
        )
    record(
        "elementembeddings_dataframe",
        "elementembeddings composition_featuriser (DataFrame)",
        seconds,
        times,
        len(formulas),
    )
    with quiet():
        seconds, times, _ = timed(
            lambda: composition_featuriser(formula_list, embedding=ee_embedding, stats=ee_stats),
            args.slow_repeats,
        )
    record(
        "elementembeddings_list",
        "elementembeddings composition_featuriser (list)",
        seconds,
        times,
        len(formulas),
    )

    # matminer ----------------------------------------------------------------------
    n_mm = min(args.matminer_rows, len(formulas))
    mm_frame = pd.DataFrame({"composition": compositions[:n_mm]})
    preset = ElementProperty.from_preset("matscholar_el")
    preset.set_n_jobs(1)
    with quiet():
        seconds, times, _ = timed(
            lambda: preset.featurize_dataframe(
                mm_frame, "composition", pbar=False, ignore_errors=True
            ),
            args.slow_repeats,
        )
    scale = len(formulas) / n_mm
    record(
        "matminer_matscholar_el",
        f"matminer ElementProperty matscholar_el, n_jobs=1 ({n_mm} rows x{scale:g})",
        seconds * scale,
        [t * scale for t in times],
        len(formulas),
        {"measured_rows": n_mm, "measured_seconds": seconds},
        scale=scale,
    )

    # site featurizer ---------------------------------------------------------------
    site = ElementEmbeddingSiteFeaturizer(embedding)
    site.featurize_dataframe(structures.iloc[:2])
    seconds, times, site_out = timed(lambda: site.featurize_dataframe(structures), args.repeats)
    record(
        "ours_site_all_sites",
        f"ours site featurize_dataframe, all {n_sites} sites",
        seconds,
        times,
        n_sites,
    )
    n_site_mm = min(args.site_matminer_structures, N_STRUCTURES)
    pairs = [(s, i) for s in structures["structure"].iloc[:n_site_mm] for i in range(len(s))]
    source = EmbeddingElementData(embedding)
    site_mm = SiteElementalProperty(data_source=source, properties=source.features)
    site_mm.set_n_jobs(1)
    with quiet():
        seconds, times, _ = timed(
            lambda: site_mm.featurize_many(pairs, pbar=False), args.slow_repeats
        )
    site_scale = n_sites / len(pairs)
    record(
        "matminer_site",
        f"matminer SiteElementalProperty 200 props, n_jobs=1 "
        f"({len(pairs)} sites x{site_scale:.2f})",
        seconds * site_scale,
        [t * site_scale for t in times],
        n_sites,
        {"measured_sites": len(pairs), "measured_seconds": seconds},
        scale=site_scale,
    )
    structure_featurizer = ElementEmbeddingStructureFeaturizer(embedding, stats=stats)
    seconds, times, _ = timed(
        lambda: structure_featurizer.featurize_dataframe(structures), args.repeats
    )
    record(
        "ours_structure",
        f"ours structure featurize_dataframe, {N_STRUCTURES} structures",
        seconds,
        times,
        N_STRUCTURES,
    )

    def ratio(numerator: str, denominator: str, measure: str) -> float:
        return results[numerator][measure] / results[denominator][measure]

    ratios = {}
    for measure in ("seconds", "cpu_seconds"):
        suffix = "" if measure == "seconds" else "_cpu"
        ratios.update(
            {
                f"matscholar_el_over_ours{suffix}": ratio(
                    "matminer_matscholar_el", "ours_dataframe_cold", measure
                ),
                f"elementembeddings_dataframe_over_ours{suffix}": ratio(
                    "elementembeddings_dataframe", "ours_dataframe_cold", measure
                ),
                f"elementembeddings_list_over_ours{suffix}": ratio(
                    "elementembeddings_list", "ours_dataframe_cold", measure
                ),
                f"ours_over_numpy_bound{suffix}": ratio(
                    "ours_dataframe_cold", "numpy_bound", measure
                ),
                f"ours_warm_over_numpy_bound{suffix}": ratio(
                    "ours_dataframe_warm", "numpy_bound", measure
                ),
                f"matminer_site_over_ours_site{suffix}": ratio(
                    "matminer_site", "ours_site_all_sites", measure
                ),
            }
        )
        if {"default_crysatom", "default_generic"} <= results.keys():
            ratios[f"crysatom_default_over_generic_default{suffix}"] = ratio(
                "default_crysatom", "default_generic", measure
            )
    targets = {
        ">=200x matscholar_el": ratios["matscholar_el_over_ours"] >= 200,
        "faster than elementembeddings DataFrame": ratios["elementembeddings_dataframe_over_ours"]
        > 1,
        "within 3x numpy bound": ratios["ours_over_numpy_bound"] <= 3,
        "site featurizer <= 0.1 s": results["ours_site_all_sites"]["seconds"] <= 0.1,
    }
    import elementembeddings
    import matminer

    report = {
        "embedding": note,
        "n_compositions": len(formulas),
        "n_structures": N_STRUCTURES,
        "n_sites": n_sites,
        "stats": list(stats),
        "repeats": args.repeats,
        "slow_repeats": args.slow_repeats,
        "sampling": f"pandas .sample(random_state={SEED}) of JARVIS rows whose elements the "
        "embedding covers",
        "numpy_bound_max_abs_difference": agreement,
        "results": results,
        "ratios": ratios,
        "targets_met": targets,
        "machine": {
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "loadavg_at_start": load_at_start,
            "loadavg_at_end": loadavg(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "matminer": matminer.__version__ if hasattr(matminer, "__version__") else "?",
            "elementembeddings": getattr(elementembeddings, "__version__", "?"),
        },
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "featurizers.json").write_text(json.dumps(report, indent=2))
    (args.output / "featurizers.md").write_text(markdown(report))
    print(markdown(report))
    return report


def markdown(report: dict) -> str:
    results = report["results"]
    base = results["ours_dataframe_cold"]
    machine = report["machine"]
    lines = [
        "# Featurizer benchmark",
        "",
        f"{report['n_compositions']} JARVIS-DFT compositions, {report['embedding']}, "
        f"{len(report['stats'])} statistics; site featurizer on all {report['n_sites']} sites "
        f"of {report['n_structures']} structures. Median of {report['repeats']} runs "
        f"({report['slow_repeats']} for matminer and elementembeddings), all in one process. "
        f"CPU: {machine['cpu']} ({machine['cpu_count']} cores, shared); load average "
        f"{machine['loadavg_at_start']} at the start and {machine['loadavg_at_end']} at the end.",
        "",
        "| method | wall (ms) | CPU (ms) | rows/s (wall) | wall / ours | CPU / ours |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, entry in results.items():
        composition = not key.startswith(("ours_site", "matminer_site", "ours_structure"))
        wall = f"{entry['seconds'] / base['seconds']:.2f}" if composition else "-"
        cpu = f"{entry['cpu_seconds'] / base['cpu_seconds']:.2f}" if composition else "-"
        lines.append(
            f"| {entry['label']} | {entry['seconds'] * 1e3:.1f} | "
            f"{entry['cpu_seconds'] * 1e3:.1f} | {entry['rows_per_s']:,.0f} | {wall} | {cpu} |"
        )
    lines += ["", "| ratio | wall | CPU |", "|---|---:|---:|"]
    for key, value in report["ratios"].items():
        if not key.endswith("_cpu"):
            lines.append(f"| {key} | {value:.2f} | {report['ratios'][key + '_cpu']:.2f} |")
    lines += ["", "| target (wall clock) | met |", "|---|---|"]
    for key, value in report["targets_met"].items():
        lines.append(f"| {key} | {'yes' if value else 'no'} |")
    lines += [
        "",
        "'ours' is `featurize_dataframe` with a cold formula cache (cleared before every run). "
        "matminer rows are timed on a subset and scaled linearly (see labels); matminer gets "
        "ready-made Composition objects, ours and elementembeddings start from formula "
        "strings. The numpy bound starts from precomputed padded fraction arrays and returns "
        "an array; ours parses the formulas and returns a DataFrame.",
        f"Largest difference between the numpy bound and ours: "
        f"{report['numpy_bound_max_abs_difference']:.2e}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
