"""The driver: run the experiments of a benchmark in order, then write its report.

One module imports every runner, so that the harness and the runners import one way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from training.benchmark.config import CGCNN_EXPERIMENTS, LOG
from training.benchmark.figures import run_figures
from training.benchmark.graph_fits import run_graph_experiment
from training.benchmark.harness import Benchmark, TimeBudgetExceeded
from training.benchmark.matminer import run_matminer
from training.benchmark.probing import run_probe
from training.benchmark.report import write_report
from training.benchmark.results import pack_histories


def run_experiments(bench: Benchmark, experiments: Sequence[str], argv: Sequence[str] = ()) -> None:
    """Run ``experiments`` of a :class:`Benchmark` in order, then write the report."""
    bench.write_run_info(experiments, argv)
    if not bench.resume:
        if any(
            only is not None
            for only in (
                bench.only_properties,
                bench.only_embeddings,
                bench.only_sizes,
                bench.only_seeds,
            )
        ):
            raise ValueError(
                "--properties/--embeddings/--sizes/--seeds need --resume (rows of the others stay)"
            )
        if bench.others_running():
            raise ValueError(
                f"another process is running experiments in {bench.run_dir}; a run without "
                "--resume would delete its rows: add --resume, or wait for it to finish"
            )
        dropped = bench.results.drop_experiments(result_experiments(experiments))
        if dropped:
            LOG.info("removed %d earlier rows of %s (no --resume)", dropped, experiments)
        folder = bench.run_dir / "checkpoints"
        for experiment in result_experiments(experiments):  # no fit resumes either
            for path in folder.glob(f"{experiment}__*.pt") if folder.is_dir() else ():
                path.unlink(missing_ok=True)
    bench.load_done()
    try:
        for experiment in experiments:
            LOG.info("=== experiment %s ===", experiment)
            t0 = time.perf_counter()
            if experiment in CGCNN_EXPERIMENTS:
                run_graph_experiment(bench, experiment)
            elif experiment == "matminer":
                run_matminer(bench)
            elif experiment == "probe":
                run_probe(bench)
            elif experiment == "figures":
                run_figures(bench)
            else:
                raise ValueError(f"unknown experiment {experiment!r}")
            LOG.info("experiment %s done in %.0f s", experiment, time.perf_counter() - t0)
    except TimeBudgetExceeded:
        LOG.warning("time budget spent: stopping; rerun with --resume to continue")
    finally:
        with bench.results.locked():  # the loose per-epoch histories into the run's table
            pack_histories(bench.run_dir)
        write_report(bench.run_dir, bench.cfg, bench.notes)
        bench.finish_run_info()


def result_experiments(experiments: Sequence[str]) -> list[str]:
    out = []
    for e in experiments:
        if e == "matminer":
            out += ["matminer_composition", "matminer_structure", "curve_matminer"]
        elif e in CGCNN_EXPERIMENTS:
            out.append(e)
    return out
