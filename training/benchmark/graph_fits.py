"""The graph-network experiments (CGCNN, ALIGNN or any registered network, with every embedding
and variant) under one protocol, fits claimed per process."""

from __future__ import annotations

import hashlib
import json
import math
import time

import numpy as np

from crysatom_featurizers.embeddings import spec_label
from crysatom_featurizers.io import atomic_write_text
from training.benchmark.config import LOG, resolve_path
from training.benchmark.data import PropertyData
from training.benchmark.harness import NO_ELEMENT_VECTORS, Benchmark
from training.benchmark.results import (
    fit_id,
    regression_scores,
    run_key,
)


def cgcnn_jobs(
    bench: Benchmark, experiment: str
) -> tuple[list[tuple[str, str]], list[tuple[float, int | None, list[int]]]]:
    """(label, spec) pairs and training budgets of a CGCNN experiment.

    A budget is ``(fraction, size, seeds)``: ``size`` is None for a fraction of
    ``max_train``, else the number of training crystals (the learning curve, whose small
    sizes may have more seeds).
    """
    cfg = bench.cfg
    seeds = list(cfg.seeds)
    if experiment == "comparison":
        return [(spec_label(s), s) for s in cfg.embeddings], [(1.0, None, seeds)]
    if experiment == "dimension":
        return [(spec_label(s), s) for s in cfg.dimension_embeddings], [(1.0, None, seeds)]
    if experiment == "ssl":
        return [(f"crysatom_ssl_{k}", v) for k, v in cfg.ssl_vectors.items()], [(1.0, None, seeds)]
    if experiment == "scarce":
        specs = cfg.scarce.get("embeddings", cfg.embeddings)
        fractions = [float(f) for f in cfg.scarce.get("fractions", [0.05, 0.2, 0.6])]
        return [(spec_label(s), s) for s in specs], [(f, None, seeds) for f in fractions]
    if experiment == "curve":
        cc = cfg.curve
        specs = cc.get("embeddings", cfg.embeddings)
        seeds = [int(x) for x in cc.get("seeds", seeds)]
        small = [int(x) for x in cc.get("small_seeds", seeds)]
        small_max = int(cc.get("small_max", 300))
        budgets = [
            (math.nan, int(n), small if int(n) <= small_max else seeds)
            for n in cc.get("sizes", [100, 300, 1000])
            if bench.wanted_size(n)
        ]
        variants = [(label, v["embedding"]) for label, v in curve_variants(cfg).items()]
        return [(spec_label(s), s) for s in specs] + variants, budgets
    raise ValueError(experiment)


def curve_variants(cfg) -> dict[str, dict]:
    """Label -> estimator parameters of the learning curve's variants (may be empty); a
    variant's ``model`` names a registered network (default ``cgcnn``)."""
    return dict(cfg.curve.get("variants") or {})


def fit_params(cfg, experiment: str, label: str) -> dict:
    """Estimator parameters of one fit: the ``cgcnn`` section, with a curve variant's
    parameters on top (a fine-tuned encoder brings its own width and depth; a variant of
    another network keeps the section's parameters that its estimator has). ``model`` names
    the network."""
    params = {"model": "cgcnn", **cfg.cgcnn}
    variant = curve_variants(cfg).get(label) if experiment == "curve" else None
    if variant:
        from crysatom_featurizers.estimators import get_estimator

        # the section's parameters that the variant's network has
        accepted = get_estimator(variant.get("model", "cgcnn"))().get_params()
        params = {k: v for k, v in params.items() if k == "model" or k in accepted}
        if variant.get("finetune") is not None:
            params.pop("atom_fea_len", None)
            params.pop("n_conv", None)
        params.update({k: v for k, v in variant.items() if k != "embedding"})
        from crysatom_featurizers.estimators._sites import potential_name
        from crysatom_featurizers.nn.pretrained import SHIPPED_ENCODERS

        for key in ("finetune", "distill"):  # encoder files: relative to the repository
            value = params.get(key)
            shipped = str(value).lower() in SHIPPED_ENCODERS or potential_name(value)
            if value is not None and not shipped:
                params[key] = str(resolve_path(value))
    return params


def encoder_checksum(spec: str) -> str:
    """Checksum of an encoder file's weights, or a universal potential's name and model
    version (a changed encoder is another fit)."""
    from crysatom_featurizers.estimators._sites import potential_name
    from crysatom_featurizers.nn.pretrained import load_encoder

    potential = potential_name(spec)
    if potential is not None:
        from crysatom_featurizers.potentials import potential_class

        return f"{potential}:{potential_class(potential).info['model_version']}"
    return str(load_encoder(spec)[1]["checksum"])


def run_graph_experiment(bench: Benchmark, experiment: str) -> None:
    """Fit the graph network (CGCNN, ALIGNN or any registered one) of every budget x seed x
    property x embedding or variant of ``experiment``."""
    jobs, budgets = cgcnn_jobs(bench, experiment)
    if not jobs:
        bench.note(f"experiment {experiment}", "skipped: the config lists no embeddings")
        return
    available = [
        (label, spec)
        for label, spec in jobs
        if bench.wanted(label) and bench.embedding(label, spec)
    ]
    if not available:
        bench.note(f"experiment {experiment}", "skipped: none of its embeddings is available")
        return
    bench.clear_note(f"experiment {experiment}")
    # Budgets and seeds outside properties: a run stopped early by --max-minutes still has
    # every property and embedding of the smallest budgets and first seeds.
    for fraction, size, seeds in budgets:
        for seed in filter(bench.wanted_seed, seeds):
            for spec in bench.properties_for(experiment):
                data = bench.property_data(spec)
                if size is not None and size > len(data.train):
                    bench.note(
                        f"{experiment} {spec.name} n={size}",
                        f"skipped: only {len(data.train)} training crystals",
                    )
                    continue
                n_train = len(data.budget(bench.cfg.max_train, fraction, size))
                frac = fraction if size is None else n_train / len(data.train)
                for label, _ in available:
                    if bench.is_done(experiment, spec.name, label, seed, frac, n_train):
                        continue
                    bench.check_time()
                    run_id = fit_id(experiment, spec.name, label, seed, frac, size)
                    if not bench.claim(run_id):
                        continue
                    try:
                        bench.load_done()  # another process may have finished it
                        if bench.is_done(experiment, spec.name, label, seed, frac, n_train):
                            continue
                        fit_network(bench, experiment, data, label, seed, frac, size)
                    except Exception as exc:  # one failing fit must not stop the run
                        LOG.exception("fit failed")
                        bench.note(run_id, f"failed: {type(exc).__name__}: {exc}")
                    finally:
                        bench.release(run_id)


def fit_network(
    bench: Benchmark,
    experiment: str,
    data: PropertyData,
    label: str,
    seed: int,
    fraction: float,
    size: int | None = None,
) -> None:
    spec = data.spec
    emb = bench.embeddings[label]
    train = data.budget(bench.cfg.max_train, fraction, size)
    val = data.val if bench.cfg.max_val is None else data.val[: bench.cfg.max_val]
    test = data.test
    params = fit_params(bench.cfg, experiment, label)
    network = params.pop("model")
    encoder = params.get("finetune") or params.get("distill")
    extra = {"encoder": encoder_checksum(encoder)} if encoder else {}
    if params.get("site_features"):
        extra["sites"] = encoder_checksum(params["site_features"])
    key = run_key(
        {
            **extra,
            "model": network,
            "property": spec.name,
            "dataset": spec.dataset,
            "embedding": emb.checksum,
            "seed": seed,
            "train": hashlib.sha256(json.dumps(train, default=str).encode()).hexdigest(),
            "val": len(val),
            "test": len(test),
            "params": params,
            "split": str(data.split_path.name),
        }
    )
    if bench.reuse(key, experiment, label, fraction):
        return
    run_id = fit_id(experiment, spec.name, label, seed, fraction, size)
    from crysatom_featurizers.estimators import get_estimator

    # every embedding and seed is selected on the same, fixed validation crystals
    vectors = None if emb is NO_ELEMENT_VECTORS else emb  # site vectors alone
    model = get_estimator(network)(embedding=vectors, random_state=seed, **params)
    g_train = bench.graphs(spec.dataset, train, model)
    y_train = bench.targets(spec, train)
    g_val = bench.graphs(spec.dataset, val, model)
    y_val = bench.targets(spec, val)
    g_test = bench.graphs(spec.dataset, test, model)
    y_test = bench.targets(spec, test)
    LOG.info("fit %s (n_train %d, n_val %d, n_test %d)", run_id, len(train), len(val), len(test))
    if not val:  # no validation crystals: the last epoch is kept
        model.set_params(validation_fraction=0)
    checkpoint = None
    if bench.cfg.checkpoint_fits:
        # named by the run key too: a fit with other settings or vectors starts afresh
        checkpoint = bench.run_dir / "checkpoints" / f"{run_id}__{key[:12]}.pt"
        checkpoint.parent.mkdir(exist_ok=True)
        for stale in checkpoint.parent.glob(f"{run_id}__*.pt"):
            if stale != checkpoint:
                LOG.info("removing %s: written under other settings", stale.name)
                stale.unlink(missing_ok=True)
        if checkpoint.exists():
            LOG.info("resuming %s from its checkpoint", run_id)
        model.set_params(checkpoint=str(checkpoint))
    t0 = time.perf_counter()
    model.fit(g_train, y_train, X_val=g_val if val else None, y_val=y_val if val else None)
    fit_seconds = time.perf_counter() - t0
    if checkpoint is not None:
        # training time summed over the processes that ran this fit (the epoch a stopped
        # process was in is not counted), plus this process's graph preparation
        fit_seconds = model.timings_["graphs_s"] + model.timings_["training_s"]
    y_pred = model.predict(g_test)
    folder = bench.run_dir / "histories"
    folder.mkdir(exist_ok=True)
    atomic_write_text(
        folder / f"{run_id}.csv", model.history_.to_csv(index=False, float_format="%.6g")
    )
    bench.save_predictions(run_id, seed, test, y_test, y_pred)
    bench.record(
        {
            "experiment": experiment,
            "property": spec.name,
            "unit": spec.unit,
            "embedding": label,
            # the element vectors' dimension; the site vectors' width for a variant with none
            "dim": int(emb.dim or model.model_.embedding.out_dim),
            "seed": int(seed),
            "train_fraction": float(fraction),
            "n_train": len(train),
            "n_val": len(val),
            "n_test": len(test),
            **regression_scores(y_test, y_pred),
            "best_epoch": int(model.best_epoch_),
            "epochs_run": int(model.n_iter_),
            "fit_seconds": fit_seconds,
            "model": network,
            "embedding_checksum": emb.checksum,
            "run_key": key,
            "reused_from": np.nan,
        }
    )
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
