"""Command line: ``python -m training.benchmark``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from training.benchmark.config import (
    EXPERIMENTS,
    BenchConfig,
    resolve_path,
)
from training.benchmark.driver import run_experiments
from training.benchmark.harness import Benchmark
from training.benchmark.report import write_report


def _split(value: str | None) -> list[str] | None:
    """The items of a comma-separated option, or None when the option was not given."""
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _split_ints(parser: argparse.ArgumentParser, flag: str, value: str | None) -> list[int] | None:
    """The integers of a comma-separated option (a usage error otherwise), or None."""
    try:
        return [int(v) for v in _split(value)] if value else None
    except ValueError:
        parser.error(f"{flag} takes integers, got {value!r}")


#: The reports written from a run's result files: ``--report NAME`` runs the module's command
#: (with ``--run`` and ``--config`` when given, its defaults otherwise).
REPORTS = {
    "labels": "training.benchmark.label_vectors",
    "alignn": "training.benchmark.alignn",
    "potentials": "training.benchmark.potential_report",
    "full": "training.benchmark.full_data",
}


def _run_report(name: str, run: str | None, config: str | None) -> int:
    import importlib

    argv = [*(["--run", run] if run else []), *(["--config", config] if config else [])]
    return int(importlib.import_module(REPORTS[name]).main(argv) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m training.benchmark",
        description="Compare element embeddings downstream (CGCNN, matminer workflow, probe), "
        "or write a report from a run's result files (--report).",
    )
    parser.add_argument("--config", default=None, help="YAML file (training/configs/bench_*)")
    parser.add_argument(
        "--report",
        choices=sorted(REPORTS),
        default=None,
        help="write this report from the result files (of --run, default the report's own) "
        "instead of running experiments",
    )
    parser.add_argument("--run", default=None, help="with --report: the run folder")
    parser.add_argument(
        "--experiments",
        default=None,
        help=f"comma-separated subset of {','.join(EXPERIMENTS)} (default: the config's list)",
    )
    parser.add_argument("--resume", action="store_true", help="skip rows already in results.csv")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop launching new fits after this many minutes (resume later)",
    )
    parser.add_argument("--out-dir", default="training/results", help="parent of <name>/")
    parser.add_argument("--name", default=None, help="run name (default: the config's name)")
    parser.add_argument("--data-dir", default=None, help="folder of the shared json.gz files")
    parser.add_argument(
        "--properties",
        default=None,
        help="comma-separated subset of the config's properties (needs --resume); lets two "
        "processes share one run directory",
    )
    parser.add_argument(
        "--embeddings",
        default=None,
        help="comma-separated subset of embedding labels for the CGCNN and matminer "
        "experiments (needs --resume), e.g. to run the baselines while new vectors train",
    )
    parser.add_argument(
        "--sizes",
        default=None,
        help="comma-separated subset of the learning curve's training sizes (needs --resume), "
        "e.g. to give the largest size its own processes",
    )
    parser.add_argument(
        "--seeds",
        default=None,
        help="comma-separated subset of the seeds of the CGCNN and matminer experiments "
        "(needs --resume), e.g. 0,1,2 for a costly model at sizes that have more seeds",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite results.md from results.csv"
    )
    args = parser.parse_args(argv)
    if args.report:
        return _run_report(args.report, args.run, args.config)
    if args.config is None:
        parser.error("--config is required (or --report NAME)")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout
    )
    cfg = BenchConfig.from_yaml(args.config)
    if args.name:
        cfg.name = args.name
    run_dir = resolve_path(args.out_dir) / cfg.name
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / "benchmark.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    experiments = _split(args.experiments) or list(cfg.experiments)
    bad = sorted(set(experiments) - set(EXPERIMENTS))
    if bad:
        parser.error(f"unknown experiments {bad}; expected some of {','.join(EXPERIMENTS)}")
    bench = Benchmark(
        cfg,
        run_dir,
        resume=args.resume,
        max_minutes=args.max_minutes,
        data_dir=args.data_dir,
        properties=_split(args.properties),
        embeddings=_split(args.embeddings),
        sizes=_split_ints(parser, "--sizes", args.sizes),
        seeds=_split_ints(parser, "--seeds", args.seeds),
    )
    try:
        if args.report_only:
            write_report(run_dir, cfg, bench.notes)
        else:
            run_experiments(bench, experiments, argv=sys.argv if argv is None else list(argv))
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    print(f"results in {run_dir}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
