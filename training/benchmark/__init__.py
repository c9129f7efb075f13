"""Experiment harness: element embeddings compared downstream, with one command per protocol.

Usage::

    python -m training.benchmark --config training/configs/bench_curve.yaml \\
        [--experiments comparison,dimension,ssl,scarce,curve,matminer,probe,figures] \\
        [--resume] [--max-minutes 60] [--properties a,b] [--embeddings x,y] \\
        [--out-dir training/results] [--name NAME] [--data-dir ../shared/data] [--report-only]

``--resume`` keeps the rows already in ``results.csv`` and skips them (chunked runs under a
command time limit: repeat the same command with ``--max-minutes`` below the limit); without
it, the rows of the experiments being run are removed first (refused while another process
works in the same directory). Several processes can share one run directory with ``--resume``:
each fit is claimed by one of them (an exclusive lock on ``claims/<fit>``, freed by the kernel
when its process ends), rows are appended under a file lock, and ``--properties`` /
``--embeddings`` narrow what one process does.

Everything goes to ``<out_dir>/<name>/`` (``out_dir`` defaults to ``training/results``):

* ``results.csv``: one row per experiment x property x embedding x seed x train fraction
  (columns :data:`COLUMNS`), appended as soon as a fit ends;
* ``results.md``: mean ± standard deviation over seeds of the test MAE per table, with the
  relative change against the ``cgcnn`` features (the "vanilla" CGCNN input) in %;
* ``summary.csv``: the numbers behind ``results.md``; for the learning curve also
  ``verdicts.csv`` (paired-seed verdicts of ``curve.target`` against ``curve.references``) and
  ``candidates.csv`` (``curve.candidates`` ranked on validation MAE);
* ``figures/``, ``probe/``, ``histories.csv.xz`` (per-epoch CGCNN curves, one table; loose ``histories/<fit>.csv`` while a run goes), ``predictions/``
  (test-set predictions of the first seed);
* ``config.yaml`` (the exact config file), ``run_info.json`` (git commit and dirty flag, host,
  CPU/GPU, load averages, versions, per invocation), ``data.json`` (rows used per property),
  ``benchmark.log`` and ``notes.json`` (embeddings or experiments that were skipped, and why).

With ``checkpoint_fits: true`` in the config, every GNN fit writes ``checkpoints/<fit>.pt``
after each epoch; a fit cut off (the process stopped, the machine rebooted) resumes there on
the next ``--resume`` and ends as an uninterrupted one would. ``bench_full.yaml`` uses it for
fits of several hours on the whole training split (report: ``python -m
training.benchmark.full_data``).

Experiments
-----------
``comparison``
    :class:`~crysatom_featurizers.estimators.CGCNNRegressor` with identical hyperparameters and
    budget for every embedding of ``embeddings``, for ``seeds`` model seeds.
``dimension``
    The same for ``dimension_embeddings`` (CrysAtom at 50, 100 and 200 dimensions). A fit that
    is identical to one already done (same property, vectors, seed, rows and hyperparameters)
    is copied instead of repeated.
``ssl``
    The same for vector files pretrained with other self-supervised losses (``ssl_vectors``,
    label -> path); missing files are skipped with a note.
``scarce``
    ``scarce.embeddings`` trained on ``scarce.fractions`` of the training set.
``curve``
    The learning curve: CGCNN for every embedding of ``curve.embeddings`` at the training
    sizes ``curve.sizes`` (nested prefixes of the seeded training list), ``curve.seeds`` model
    seeds (``curve.small_seeds`` up to ``curve.small_max`` crystals), early stopping on the same
    ``max_val`` validation crystals for all. The report judges ``curve.target`` against
    ``curve.references`` with paired seeds (:mod:`training.benchmark.curve`), and ranks
    ``curve.candidates`` on validation MAE only, to choose the shipped vectors.
``matminer``
    The classic workflow: :class:`ElementEmbeddingCompositionFeaturizer` (``matminer.stats``)
    or :class:`ElementEmbeddingStructureFeaturizer` site statistics plus the structure
    descriptors of ``matminer.structure_extras``, then
    ``HistGradientBoostingRegressor(random_state=seed)``, fitted on the training rows only
    (the same rows as the CGCNN runs; the validation rows are not used, there is no early
    stopping), scored on the same test rows; with ``matminer.curve_sizes`` also the composition
    workflow at the learning-curve sizes (experiment ``curve_matminer``).
``probe``
    ``training/probe.py`` on ``probe.embeddings``, written to ``probe/`` next to the
    CrystalTransformer paper's Table VI values.
``figures``
    PCA and t-SNE maps coloured by group and by block and a cosine-similarity heatmap for each
    of ``figures.embeddings``; parity plots and learning curves of the CGCNN runs found in
    ``results.csv``; MAE bar charts.

Splits
------
For each property, the rows with a finite target are split 80/10/10 by a permutation seeded
with ``split_seed`` (123) of the ids sorted in ascending order: the first 80 % of the permuted
ids train, the next 10 % validate, the last 10 % test. The split is written to
``<splits_dir>/<property>.json`` (ids: ``jarvis_index`` or ``material_id``), in permuted order,
and read back on later runs (a mismatch with the data is an error, never a silent re-split).
Rows with an element outside ``elements`` (default: the 86 elements every comparator
embedding covers, :data:`training.probe.COMMON_ELEMENTS`) are then dropped from all three
parts, so every embedding sees the same rows. A training budget of N crystals is the first N
remaining ids of the training list, a fraction f of it the first ``round(f N)``; the first
``max_val`` remaining validation ids are used for early stopping (model selection by
validation loss only); the test part is used in full and only for the reported scores.

Modules: :mod:`~training.benchmark.config` (settings), :mod:`~training.benchmark.data`
(datasets, splits, budgets), :mod:`~training.benchmark.results` (the locked results file, run
ids, provenance), :mod:`~training.benchmark.harness` (the :class:`Benchmark` that ties them
together), one runner module per experiment family (:mod:`~training.benchmark.graph_fits`,
:mod:`~training.benchmark.matminer`, :mod:`~training.benchmark.probing`),
:mod:`~training.benchmark.curve` (learning-curve tables, verdicts, candidate ranking,
figures), :mod:`~training.benchmark.figures`, :mod:`~training.benchmark.report`,
:mod:`~training.benchmark.driver` (runs the experiments in order) and
:mod:`~training.benchmark.cli`.
"""

from training.benchmark.cli import main
from training.benchmark.config import (
    BASELINE,
    CGCNN_EXPERIMENTS,
    EXPERIMENTS,
    PAPER_MAE,
    BenchConfig,
    PropertySpec,
)
from training.benchmark.data import PropertyData, load_dataset, make_split, synthetic_dataset
from training.benchmark.harness import Benchmark, TimeBudgetExceeded
from training.benchmark.report import markdown_tables, summarize, write_report
from training.benchmark.results import COLUMNS, ResultsFile, regression_scores
from training.corpus import REPO_ROOT

__all__ = [
    "BASELINE",
    "CGCNN_EXPERIMENTS",
    "COLUMNS",
    "EXPERIMENTS",
    "PAPER_MAE",
    "REPO_ROOT",
    "BenchConfig",
    "Benchmark",
    "PropertyData",
    "PropertySpec",
    "ResultsFile",
    "TimeBudgetExceeded",
    "load_dataset",
    "main",
    "make_split",
    "markdown_tables",
    "regression_scores",
    "summarize",
    "synthetic_dataset",
    "write_report",
]
