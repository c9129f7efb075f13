"""Throughput of ``featurize_dask`` on a local dask.distributed cluster against the in-memory path.

Run from the repository root (offline; the formulas are generated)::

    python benchmarks/bench_dask.py [--workers 2] [--repeats 3] [--rows 20000]

Two workloads, each timed end to end from formula strings to a pandas DataFrame of features:

* ``embedding``: :class:`ElementEmbeddingCompositionFeaturizer` with SkipAtom (200 dims x 5
  statistics = 1,000 features), ``--rows`` formulas. It is vectorized, so per row it costs
  little more than parsing the formula.
* ``magpie``: matminer's ``ElementProperty.from_preset("magpie")`` (132 features), which
  featurizes row by row in Python, ``--magpie-rows`` formulas.

In memory: parse the formulas with ``pymatgen.core.Composition`` and call
``featurize_dataframe`` in this process (``n_jobs=1``). Dask: the formula strings in
``--partitions`` partitions, ``featurize_dask(..., converter=Composition)`` on a
``LocalCluster(n_workers=--workers, threads_per_worker=1, processes=True)``, ``.compute()``
(the features come back to this process). A second timing of each path ends in
``to_parquet`` instead (for dask, the workers write their partitions and nothing is gathered),
the usual way to keep features that do not fit in one machine's memory. The cluster is started and warmed up (imports and
embedding loading in the workers) before timing; the cold first run is reported separately.
Timings are the median of ``--repeats`` runs; the 1-minute load average before and after each
workload is recorded, because the machine may be shared. Results go to
``benchmarks/results/dask.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

# Elements that SkipAtom and Magpie both cover.
ELEMENTS = [
    "H", "Li", "Be", "B", "C", "N", "O", "F", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "K", "Ca",
    "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br",
    "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te",
    "I", "Cs", "Ba", "La", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Pb", "Bi",
]  # fmt: skip


def make_formulas(n: int) -> list[str]:
    """``n`` distinct binary and ternary formulas, in a fixed order."""
    formulas: list[str] = []
    for a, b in itertools.combinations(ELEMENTS, 2):
        for i, j in itertools.product(range(1, 4), repeat=2):
            formulas.append(f"{a}{i}{b}{j}")
    for a, b, c in itertools.combinations(ELEMENTS, 3):
        formulas.append(f"{a}{b}2{c}3")
        if len(formulas) >= n:
            break
    if len(formulas) < n:
        raise ValueError(f"can generate only {len(formulas)} formulas")
    return formulas[:n]


def loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover - not on every platform
        return None


def median_time(function, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def run_workload(name, featurizer, formulas, client, args) -> dict:
    import dask.dataframe as dd
    from pymatgen.core import Composition

    from crysatom_featurizers.dask import featurize_dask

    frame = pd.DataFrame({"formula": formulas})
    featurizer.set_n_jobs(1)

    def in_memory():
        df = frame.assign(composition=[Composition(f) for f in frame["formula"]])
        return featurizer.featurize_dataframe(df, "composition", pbar=False)

    ddf = dd.from_pandas(frame, npartitions=args.partitions)

    def on_dask():
        lazy = featurize_dask(ddf, featurizer, "formula", converter=Composition)
        return lazy.compute()

    scratch = Path(tempfile.mkdtemp(prefix="bench_dask_"))

    def in_memory_to_parquet():
        in_memory().drop(columns="composition").to_parquet(scratch / "in_memory.parquet")

    def on_dask_to_parquet():
        # The workers write their partitions; nothing comes back to this process.
        lazy = featurize_dask(ddf, featurizer, "formula", converter=Composition)
        lazy.to_parquet(scratch / "dask", overwrite=True)

    load_before = loadavg()
    start = time.perf_counter()
    on_dask()  # cold: workers import the libraries and load the embedding
    cold = time.perf_counter() - start
    memory_s, memory_runs = median_time(in_memory, args.repeats)
    dask_s, dask_runs = median_time(on_dask, args.repeats)
    memory_pq_s, _ = median_time(in_memory_to_parquet, args.repeats)
    dask_pq_s, _ = median_time(on_dask_to_parquet, args.repeats)
    shutil.rmtree(scratch, ignore_errors=True)
    # Same numbers both ways (checked on the last run).
    reference = in_memory()
    result = on_dask()
    labels = featurizer.feature_labels()
    pd.testing.assert_frame_equal(
        result[labels].reset_index(drop=True),
        reference[labels].reset_index(drop=True),
        check_exact=True,
        check_dtype=False,
    )
    n = len(formulas)
    row = {
        "workload": name,
        "featurizer": type(featurizer).__name__,
        "n_features": len(labels),
        "rows": n,
        "partitions": args.partitions,
        "in_memory_s": round(memory_s, 3),
        "in_memory_runs_s": [round(t, 3) for t in memory_runs],
        "dask_s": round(dask_s, 3),
        "dask_runs_s": [round(t, 3) for t in dask_runs],
        "dask_cold_first_run_s": round(cold, 3),
        "in_memory_rows_per_s": round(n / memory_s, 1),
        "dask_rows_per_s": round(n / dask_s, 1),
        "throughput_ratio_dask_over_in_memory": round(memory_s / dask_s, 3),
        "to_parquet_in_memory_s": round(memory_pq_s, 3),
        "to_parquet_dask_s": round(dask_pq_s, 3),
        "to_parquet_throughput_ratio": round(memory_pq_s / dask_pq_s, 3),
        "loadavg_1min_before": load_before,
        "loadavg_1min_after": loadavg(),
        "identical_features": True,
    }
    print(
        f"{name:10s} {n:6d} rows  in-memory {row['in_memory_rows_per_s']:9.1f} rows/s  "
        f"dask {row['dask_rows_per_s']:9.1f} rows/s  ratio {row['throughput_ratio_dask_over_in_memory']:.2f}"
        f"  to_parquet ratio {row['to_parquet_throughput_ratio']:.2f}"
        f"  (load {load_before} -> {row['loadavg_1min_after']})",
        flush=True,
    )
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--magpie-rows", type=int, default=2_000)
    parser.add_argument("--output", type=Path, default=RESULTS / "dask.json")
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore")
    import dask
    import distributed
    from distributed import Client, LocalCluster
    from matminer.featurizers.composition import ElementProperty

    from crysatom_featurizers.featurizers import ElementEmbeddingCompositionFeaturizer

    rows = []
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        rows.append(
            run_workload(
                "embedding",
                ElementEmbeddingCompositionFeaturizer("skipatom"),
                make_formulas(args.rows),
                client,
                args,
            )
        )
        rows.append(
            run_workload(
                "magpie",
                ElementProperty.from_preset("magpie", impute_nan=False),
                make_formulas(args.magpie_rows),
                client,
                args,
            )
        )
    report = {
        "benchmark": "featurize_dask vs in-memory featurize_dataframe",
        "command": " ".join(["python benchmarks/bench_dask.py", *(argv or sys.argv[1:])]),
        "cluster": f"LocalCluster(n_workers={args.workers}, threads_per_worker=1, processes=True)",
        "repeats": args.repeats,
        "statistic": "median wall time; ratio = in-memory time / dask time (> 1: dask faster)",
        "note": "the machine may be shared: see loadavg_1min_* (1-minute load average)",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "dask": dask.__version__,
            "distributed": distributed.__version__,
            "pandas": pd.__version__,
        },
        "results": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
