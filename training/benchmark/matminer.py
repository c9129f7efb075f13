"""The matminer workflow: embedding featurizers + HistGradientBoosting on the same rows."""

from __future__ import annotations

import time

import numpy as np

from crysatom_featurizers.embeddings import spec_label
from training.benchmark.config import (
    PropertySpec,
)
from training.benchmark.data import STRUCTURE_EXTRAS
from training.benchmark.harness import Benchmark
from training.benchmark.results import (
    fit_id,
    regression_scores,
    run_key,
)


def run_matminer(bench: Benchmark) -> None:
    """Composition and structure featurizers + HistGradientBoostingRegressor."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    from crysatom_featurizers.featurizers import (
        ElementEmbeddingCompositionFeaturizer,
        ElementEmbeddingStructureFeaturizer,
    )

    mm = bench.cfg.matminer
    specs = mm.get("embeddings", bench.cfg.embeddings)
    stats = tuple(mm.get("stats", ("mean", "std_dev", "min", "max", "range")))
    seeds = [int(s) for s in mm.get("seeds", bench.cfg.seeds)]
    max_train = mm.get("max_train", bench.cfg.max_train)
    hgb_params = dict(mm.get("hgb", {}))
    extras = list(mm.get("structure_extras", list(STRUCTURE_EXTRAS)))
    workflows = list(mm.get("workflows", ["composition", "structure"]))
    n_threads = mm.get("n_threads")
    unknown = sorted(set(extras) - set(STRUCTURE_EXTRAS))
    if unknown:
        raise ValueError(f"unknown structure_extras {unknown}; known {list(STRUCTURE_EXTRAS)}")
    available = [(spec_label(s), s) for s in specs]
    available = [(lab, s) for lab, s in available if bench.wanted(lab) and bench.embedding(lab, s)]
    inputs: dict[tuple, tuple] = {}

    def prepare(spec: PropertySpec, size: int | None) -> tuple:
        """Training/test rows, targets, structures, compositions and descriptors."""
        if (spec.name, size) not in inputs:
            data = bench.property_data(spec)
            train, test = data.budget(max_train, 1.0, size), data.test
            frame = bench.dataset(spec.dataset)
            s_train = list(frame.loc[train, "structure"])
            s_test = list(frame.loc[test, "structure"])
            inputs[(spec.name, size)] = (
                train,
                test,
                bench.targets(spec, train),
                bench.targets(spec, test),
                s_train,
                s_test,
                [s.composition for s in s_train],
                [s.composition for s in s_test],
                np.array([[STRUCTURE_EXTRAS[e](s) for e in extras] for s in s_train]),
                np.array([[STRUCTURE_EXTRAS[e](s) for e in extras] for s in s_test]),
            )
        return inputs[(spec.name, size)]

    def fit_group(
        experiment: str,
        workflow: str,
        spec: PropertySpec,
        size: int | None,
        label: str,
        todo: list[int],
        frac: float,
    ) -> None:
        """Featurize once, then fit and score one model per seed of ``todo``."""
        bench.check_time()
        (
            train,
            test,
            y_train,
            y_test,
            s_train,
            s_test,
            comp_train,
            comp_test,
            extra_train,
            extra_test,
        ) = prepare(spec, size)
        emb = bench.embeddings[label]
        t0 = time.perf_counter()
        try:
            if workflow == "composition":
                feat = ElementEmbeddingCompositionFeaturizer(emb, stats=stats)
                x_train = feat.featurize_many(comp_train)
                x_test = feat.featurize_many(comp_test)
            elif workflow == "structure":
                feat = ElementEmbeddingStructureFeaturizer(emb, stats=stats)
                x_train = np.hstack([feat.featurize_many(s_train), extra_train])
                x_test = np.hstack([feat.featurize_many(s_test), extra_test])
            else:
                raise ValueError(f"unknown matminer workflow {workflow!r}")
        except ValueError as exc:  # e.g. an element the embedding lacks
            bench.note(
                fit_id(experiment, spec.name, label, todo[0], frac, size),
                f"failed: {type(exc).__name__}: {exc}",
            )
            return
        featurize_s = time.perf_counter() - t0
        for seed in todo:
            bench.check_time()
            model = HistGradientBoostingRegressor(random_state=seed, **hgb_params)
            t1 = time.perf_counter()
            with threadpool_limits(limits=n_threads):
                model.fit(x_train, y_train)
                y_pred = model.predict(x_test)
            fit_seconds = time.perf_counter() - t1 + featurize_s
            run_id = fit_id(experiment, spec.name, label, seed, frac, size)
            bench.save_predictions(run_id, seed, test, y_test, y_pred)
            bench.record(
                {
                    "experiment": experiment,
                    "property": spec.name,
                    "unit": spec.unit,
                    "embedding": label,
                    "dim": int(emb.dim),
                    "seed": int(seed),
                    "train_fraction": frac,
                    "n_train": len(train),
                    "n_val": 0,
                    "n_test": len(test),
                    **regression_scores(y_test, y_pred),
                    "best_epoch": np.nan,
                    "epochs_run": int(model.n_iter_),
                    "fit_seconds": fit_seconds,
                    "model": f"hgb_{workflow}",
                    "embedding_checksum": emb.checksum,
                    "run_key": run_key(
                        {
                            "model": experiment,
                            "property": spec.name,
                            "embedding": emb.checksum,
                            "seed": seed,
                            "n_train": len(train),
                            "hgb": hgb_params,
                        }
                    ),
                    "reused_from": np.nan,
                }
            )

    # (experiment, workflow, size): the max_train budget of each workflow, then the
    # composition workflow on the learning-curve sizes (experiment "curve_matminer").
    plans: list[tuple[str, str, int | None]] = [
        (f"matminer_{w}", w, None) for w in workflows if w in mm.get("at_max_train", workflows)
    ]
    plans += [
        ("curve_matminer", "composition", int(n))
        for n in mm.get("curve_sizes", [])
        if bench.wanted_size(n)
    ]
    # Workflows outside properties: a run stopped by --max-minutes has the first workflow
    # on every property.
    for experiment, workflow, size in plans:
        for spec in bench.properties_for("matminer"):
            data = bench.property_data(spec)
            if size is not None and size > len(data.train):
                bench.note(
                    f"{experiment} {spec.name} n={size}",
                    f"skipped: only {len(data.train)} training crystals",
                )
                continue
            n_train = len(data.budget(max_train, 1.0, size))
            frac = 1.0 if size is None else n_train / len(data.train)
            for label, _ in available:
                todo = [
                    s
                    for s in filter(bench.wanted_seed, seeds)
                    if not bench.is_done(experiment, spec.name, label, s, frac, n_train)
                ]
                if not todo:
                    continue
                # one claim per (workflow, property, embedding, size): its seeds share features
                group = fit_id(experiment, spec.name, label, todo[0], frac, size)
                if not bench.claim(group):
                    continue
                try:
                    bench.load_done()  # another process may have finished it
                    todo = [
                        s
                        for s in todo
                        if not bench.is_done(experiment, spec.name, label, s, frac, n_train)
                    ]
                    if todo:
                        fit_group(experiment, workflow, spec, size, label, todo, frac)
                finally:
                    bench.release(group)
