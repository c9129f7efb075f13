"""``crysatom train`` and ``crysatom predict``: CGCNN and ALIGNN property models from the
command line."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from crysatom_featurizers.cli._common import (
    ERROR_COLUMN,
    FIGURE_SUFFIXES,
    INPUT_FORMATS,
    MODEL_SUFFIXES,
    OUTPUT_SUFFIXES,
    SAFE_MODEL_SUFFIX,
    TRUST_FLAG,
    CLIError,
    _check_not_an_input,
    _check_output_path,
    _echo,
    _input_source,
    _load_embedding,
    _progress,
    _raise_first_error,
    _save_figure,
    _use_agg,
    _write_table,
    read_input,
    user_errors,
)
from crysatom_featurizers.embeddings import DEFAULT_EMBEDDING
from crysatom_featurizers.io import InputTable, save_model, short_error


def _check_coverage(table: InputTable, embedding, positions: list[int]) -> dict[int, str]:
    """Rows whose structures contain elements the embedding has no vector for."""
    errors = {}
    covered = set(embedding.symbols)
    for position in positions:
        structure = table.frame["structure"].iat[position]
        missing = sorted({el.symbol for el in structure.composition.elements} - covered)
        if missing:
            errors[position] = (
                f"element(s) {', '.join(missing)} not covered by embedding {embedding.name!r} "
                f"({len(covered)} elements)"
            )
    return errors


def _training_table(args: argparse.Namespace) -> tuple[InputTable, list[int]]:
    table = read_input(args.data, args, use_id_prop=True, limit=args.limit)
    if not table.has_structures:
        raise CLIError(f"{args.data} holds no crystal structures; training needs structures")
    if "target" not in table.frame.columns:
        if table.kind == "cif-folder":
            raise CLIError(f"{args.data} has no id_prop.csv (lines 'id,target', no header)")
        raise CLIError(f"pass --target COLUMN to say which column of {args.data} to learn")
    return table, list(range(len(table.frame)))


def _check_duplicate_targets(table: InputTable) -> set[int]:
    """Refuse ids that occur more than once with different targets; return the positions of
    the repeats of an id with the same target (to be dropped: a crystal is trained on once,
    and never lands in both the training and the held-out split)."""
    import numpy as np

    frame = table.frame[["id", "target"]]
    repeated = frame[frame["id"].duplicated(keep=False)]
    if repeated.empty:
        return set()
    values = repeated.groupby("id", sort=False)["target"].agg(lambda t: set(t.dropna().tolist()))
    conflicting = [str(i) for i, targets in values.items() if len(targets) > 1]
    if conflicting:
        shown = ", ".join(conflicting[:5]) + (" ..." if len(conflicting) > 5 else "")
        raise CLIError(
            f"{len(conflicting)} id(s) occur more than once with different targets: {shown}; "
            "keep one line per id"
        )
    return set(np.flatnonzero(frame["id"].duplicated(keep="first").to_numpy()).tolist())


def _require_gnn(command: str) -> None:
    from crysatom_featurizers.deps import MissingGNNDependencyError, require_gnn

    try:
        require_gnn(command)
    except MissingGNNDependencyError as exc:
        raise CLIError(str(exc)) from None


#: Options of ``crysatom train`` that only some networks take (and the training recipe, which a
#: registered network may lack): each is the estimator parameter
#: of the same name, passed only when given, and refused for a network without it.
_NETWORK_OPTIONS = (
    "atom_fea_len",
    "n_conv",
    "h_fea_len",
    "finetune",
    "encoder_lr",
    "preset",
    "site_features",
    "optimizer",
    "weight_decay",
    "lr_schedule",
    "warmup_epochs",
)


def _regressor(args: argparse.Namespace, freeze: int | str) -> Any:
    """The registered regressor of ``--model``, with its own options bound."""
    from functools import partial

    from crysatom_featurizers.estimators import get_estimator

    try:
        cls = get_estimator(args.model, "regression")
    except ValueError as exc:
        raise CLIError(f"--model: {exc}") from None
    accepted = cls().get_params(deep=False)
    options = {k: getattr(args, k) for k in _NETWORK_OPTIONS if getattr(args, k) is not None}
    if freeze != 0:
        options["freeze_encoder_epochs"] = freeze
    given = [f"--{k.replace('_', '-')}" for k in options if k not in accepted]
    if given:
        raise CLIError(f"{', '.join(given)} do(es) not apply to --model {args.model}")
    return partial(cls, **options)


def _cmd_train(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    _require_gnn("crysatom train")

    if args.patience is not None and not args.val_fraction:
        raise CLIError(
            "--patience stops on the validation error: set --val-fraction > 0, or leave "
            "--patience out"
        )
    output = _check_output_path(args.output, MODEL_SUFFIXES)
    _check_not_an_input(output, args.data, args.finetune, args.distill)
    _check_replaceable_model(output)
    if args.checkpoint is not None:
        checkpoint = Path(args.checkpoint)
        _check_not_an_input(
            checkpoint, args.data, args.finetune, args.distill,
            flag="--checkpoint", what="the checkpoint",
        )  # fmt: skip
        if checkpoint.expanduser().resolve() == output.expanduser().resolve():
            raise CLIError(
                f"--checkpoint {args.checkpoint} is the -o model file; the fit's state and the "
                "model need two files: choose another --checkpoint"
            )
    if args.plot_dir is not None and Path(args.plot_dir).exists():
        if not Path(args.plot_dir).is_dir():
            raise CLIError(f"--plot-dir {args.plot_dir} is a file, not a folder; choose a folder")
    freeze = _freeze_epochs(args.freeze_encoder_epochs)
    make_model = _regressor(args, freeze)  # before any work: an unknown network or option
    input_name = args.embedding
    if args.finetune is not None and input_name is None:
        input_name = _encoder_input(args.finetune)  # the vectors the encoder was trained on
    if args.site_features is not None and input_name is None:
        embedding = _site_coverage(args.site_features)  # the elements the potential evaluates
    else:
        embedding = _load_embedding(input_name or DEFAULT_EMBEDDING, args.dim)
    table, positions = _training_table(args)
    repeats = _check_duplicate_targets(table)
    if repeats:
        positions = [p for p in positions if p not in repeats]
        shown = ", ".join(str(table.frame["id"].iat[p]) for p in sorted(repeats)[:5])
        _echo(
            args,
            f"note: {len(repeats)} repeated line(s) of an id with the same target dropped "
            f"({shown}{' ...' if len(repeats) > 5 else ''}); each crystal is trained on once",
        )
    errors = dict(table.errors)
    for position, why in table.target_errors.items():
        errors.setdefault(position, why)
    errors.update(_check_coverage(table, embedding, [p for p in positions if p not in errors]))
    hint = "fix the data or pass --ignore-errors to drop those rows"
    if not args.ignore_errors:
        _raise_first_error(table, errors, hint)
    targets = table.frame["target"].to_numpy(dtype=float)
    keep = [p for p in positions if p not in errors]
    if errors:
        skipped = ", ".join(str(table.frame["id"].iat[p]) for p in sorted(errors)[:10])
        more = f" and {len(errors) - 10} more" if len(errors) > 10 else ""
        _echo(
            args,
            f"skipping {len(errors)} row(s) that could not be used (--ignore-errors): ids "
            f"{skipped}{more}",
        )
    if len(keep) < 4:
        raise CLIError(f"need at least 4 usable structures to train, found {len(keep)}")

    rng = np.random.default_rng(args.seed)
    test_idx: list[int] = []
    if args.test_fraction:
        if not 0 < args.test_fraction < 1:
            raise CLIError(f"--test-fraction must be between 0 and 1, got {args.test_fraction}")
        n_test = max(1, int(round(args.test_fraction * len(keep))))
        if len(keep) - n_test < 4:
            raise CLIError(
                f"--test-fraction {args.test_fraction} holds out {n_test} of {len(keep)} usable "
                f"structures and leaves {len(keep) - n_test} to train on (at least 4 needed); "
                "lower it"
            )
        shuffled = list(rng.permutation(keep))
        test_idx, keep = sorted(shuffled[:n_test]), sorted(shuffled[n_test:])
    structures = table.frame["structure"]
    model = make_model(
        embedding=args.embedding,
        dim=args.dim,
        distill=args.distill,
        distill_delta=args.distill_delta,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        validation_fraction=args.val_fraction,
        patience=args.patience,
        device=args.device,
        random_state=args.seed,
        n_threads=args.threads,
        verbose=0 if args.quiet else 1,
        checkpoint=args.checkpoint,
        allow_isolated=bool(args.allow_isolated),
    )
    try:  # incompatible transfer settings, unreadable encoder files, bad values
        # indexed by the data's ids, so that an error names the structure as the file does
        ids = pd.Index(table.frame["id"].iloc[keep].astype(str), dtype=object)
        model.fit(structures.iloc[keep].set_axis(ids), targets[keep])
    except (ValueError, OSError, ImportError) as exc:
        raise CLIError(_in_flags(short_error(exc))) from exc
    with user_errors():  # written atomically: a failed write leaves an older model intact
        if output.suffix == SAFE_MODEL_SUFFIX:
            model.save(output)
        else:
            save_model(model, output)
            _echo(
                args,
                f"note: {output} is a pickle; 'crysatom predict' loads it only with {TRUST_FLAG}. "
                f"Name the file *{SAFE_MODEL_SUFFIX} for a model file that is safe to share.",
            )

    if model.transfer_ is not None:
        t = model.transfer_
        how = "fine-tuned from" if t["mode"] == "finetune" else "distilled from"
        _echo(
            args,
            f"{how} the {t['encoder']!r} encoder ({t['hidden_dim']}-wide, {t['num_layers']} "
            "convolutions)",
        )
    history = model.history_
    best = history.loc[history["epoch"] == model.best_epoch_].iloc[0]
    units = f" {args.units}" if args.units else ""
    if np.isfinite(best["val_mae"]):
        # The estimator holds out round(fraction * n) structures, at least one.
        n_val = max(1, int(round(args.val_fraction * len(keep))))
        _echo(
            args,
            f"validation MAE: {best['val_mae']:.4g}{units} (best epoch {model.best_epoch_} of "
            f"{model.n_iter_}; {len(keep) - n_val} training, {n_val} validation structures)",
        )
    else:
        _echo(args, f"training MAE: {best['train_mae']:.4g}{units} (no validation split)")
    if test_idx:
        predictions = model.predict(structures.iloc[test_idx].reset_index(drop=True))
        test_mae = float(np.mean(np.abs(predictions - targets[test_idx])))
        _echo(args, f"test MAE: {test_mae:.4g}{units} ({len(test_idx)} held-out structures)")
    if args.plot_dir:
        plot_dir = Path(args.plot_dir)
        plot_dir.mkdir(parents=True, exist_ok=True)
        _use_agg()
        from crysatom_featurizers import plotting

        ax = plotting.plot_learning_curve(model, units=args.units)
        _save_figure(ax.figure, plot_dir / "learning_curve.png")
        written = [plot_dir / "learning_curve.png"]
        if test_idx:
            ax = plotting.plot_parity(
                targets[test_idx],
                predictions,
                units=args.units,
                label=args.target or "target",
                title="held-out test set",
            )
            _save_figure(ax.figure, plot_dir / "parity_test.png")
            written.append(plot_dir / "parity_test.png")
        _echo(args, "plots: " + ", ".join(str(p) for p in written))
    _echo(args, f"saved model to {output}")
    return 0


#: Estimator parameters and the ``crysatom train`` flags that set them.
_TRAIN_FLAGS = {
    "freeze_encoder_epochs": "--freeze-encoder-epochs",
    "validation_fraction": "--val-fraction",
    "distill_delta": "--distill-delta",
    "atom_fea_len": "--atom-fea-len",
    "random_state": "--seed",
    "encoder_lr": "--encoder-lr",
    "batch_size": "--batch-size",
    "h_fea_len": "--h-fea-len",
    "embedding": "--embedding",
    "n_threads": "--threads",
    "finetune": "--finetune",
    "patience": "--patience",
    "distill": "--distill",
    "n_conv": "--n-conv",
    "epochs": "--epochs",
    "device": "--device",
    "dim": "--dim",
    "lr": "--lr",
    "optimizer": "--optimizer",
    "weight_decay": "--weight-decay",
    "lr_schedule": "--lr-schedule",
    "warmup_epochs": "--warmup-epochs",
}


def _in_flags(message: str) -> str:
    """An estimator's error message in the command line's terms: ``atom_fea_len=None`` and
    ``atom_fea_len must ...`` become ``--atom-fea-len``."""
    import re

    message = message.replace("allow_isolated=True", "--allow-isolated")
    message = message.replace("site_features=", "--site-features ")

    for name, flag in _TRAIN_FLAGS.items():
        message = re.sub(rf"(?<![\w-]){name}=None\b", f"{flag} unset", message)
        message = re.sub(rf"(?<![\w-]){name}=", f"{flag} ", message)
        message = re.sub(rf"(?<![\w'-]){name}(?= must| and | or | apply| >|,|\))", flag, message)
    return message


def _freeze_epochs(value: str) -> int | str:
    """``--freeze-encoder-epochs``: a non-negative integer or ``all``."""
    if value == "all":
        return value
    try:
        epochs = int(value)
    except ValueError:
        epochs = -1
    if epochs < 0:
        raise CLIError(f"--freeze-encoder-epochs must be an integer >= 0 or 'all', got {value!r}")
    return epochs


def _check_replaceable_model(output: Path) -> None:
    """Refuse, before the fit, to replace an existing file that is not a model of this package:
    a ``.safetensors`` file whose header names another format, or a ``.joblib`` file that does
    not name a crysatom-featurizers estimator (its first bytes are read; it is not unpickled)."""
    if not output.exists() or output.is_dir():
        return
    from crysatom_featurizers.estimators._persist import _is_our_model_file

    if output.suffix == SAFE_MODEL_SUFFIX:
        ours = _is_our_model_file(output)
    else:
        with open(output, "rb") as handle:
            head = handle.read(1 << 16)
        ours = head[:1] == b"\x80" and b"crysatom_featurizers.estimators" in head
    if not ours:
        raise CLIError(
            f"-o {output} exists and is not a crysatom-featurizers model file; not replacing it "
            "(remove it or choose another -o)"
        )


def _site_coverage(potential: str) -> Any:
    """The table of the elements that ``--site-features`` evaluates."""
    from crysatom_featurizers.estimators._sites import coverage_table
    from crysatom_featurizers.potentials import check_potential_name

    try:
        return coverage_table(check_potential_name(potential))
    except (ValueError, ImportError) as exc:
        raise CLIError(f"--site-features: {short_error(exc)}") from None


def _encoder_input(spec: str) -> str:
    """Registry name of the element vectors an encoder file reads."""
    from crysatom_featurizers.nn.pretrained import load_encoder

    with user_errors():
        _, metadata = load_encoder(spec)
    return str(metadata.get("input_embedding", "cgcnn"))


def _load_model(path: str, trust_pickle: bool = False):
    """The model of ``path``: a safe model file, or with ``trust_pickle`` a joblib pickle."""
    import joblib

    from crysatom_featurizers.estimators._persist import is_safe_model_file

    model_path = Path(path)
    if not model_path.is_file():
        hint = (
            " (the model file comes first: crysatom predict MODEL DATA)"
            if model_path.is_dir()
            else ""
        )
        raise CLIError(f"model file {path} does not exist{hint}")
    if is_safe_model_file(model_path):
        _require_gnn(f"the model in {path}")
        from crysatom_featurizers.estimators import load_model

        with user_errors():
            return load_model(model_path)
    if not trust_pickle:
        raise CLIError(
            f"{path} is not a .safetensors model file; if it is a pickle (joblib), loading it can "
            f"run any code it contains, so it is refused. Pass {TRUST_FLAG} only if you made it "
            "or trust its source"
        )
    try:
        model = joblib.load(model_path)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("torch", "torch_geometric"):
            _require_gnn(f"the model in {path}")
        raise CLIError(f"cannot load model {path}: {short_error(exc)}") from None
    except Exception as exc:
        detail = short_error(exc)
        detail = detail if len(detail) <= 120 else detail[:117] + "..."
        raise CLIError(
            f"cannot load model {path}: not a model saved with joblib by 'crysatom train' "
            f"({type(exc).__name__}: {detail})"
        ) from None
    if not hasattr(model, "predict"):
        raise CLIError(f"{path} holds a {type(model).__name__}, not a fitted model")
    return model


def _looks_like_data(path: str) -> bool:
    """A CIF folder or a structure file given where the model file belongs."""
    given = Path(path)
    return given.is_dir() or given.suffix.lower() in (".cif", ".csv", ".json", ".gz")


def _predict_rows(model, structures: list[Any], args: argparse.Namespace):
    """Predictions for ``structures``; rows that fail get NaN and a message."""
    import numpy as np
    import pandas as pd

    def run(items: list[Any]) -> np.ndarray:
        return np.asarray(model.predict(pd.Series(items, dtype=object)), dtype=float)

    chunk = 512
    outputs: list[np.ndarray] = []
    errors: dict[int, str] = {}
    with _progress(args, total=len(structures), desc="predicting", unit="structure") as bar:
        for start in range(0, len(structures), chunk):
            items = structures[start : start + chunk]
            try:
                outputs.append(run(items))
            except (ValueError, TypeError, RuntimeError) as exc:
                if not args.ignore_errors:
                    raise
                # Isolate the failing structures one by one.
                rows = []
                for offset, item in enumerate(items):
                    try:
                        rows.append(run([item])[0])
                    except (ValueError, TypeError, RuntimeError) as row_exc:
                        errors[start + offset] = short_error(row_exc)
                        rows.append(np.nan)
                del exc
                outputs.append(np.asarray(rows, dtype=float))
            bar.update(len(items))
    return np.concatenate(outputs) if outputs else np.empty(0), errors


def _cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    # Unlike featurize, a forgotten DATA is an error: predictions for the example crystals are
    # asked for explicitly with --example.
    _input_source(args.data, args.example, "DATA")
    if args.data is None and not args.example and _looks_like_data(args.model):
        raise CLIError(
            f"no MODEL: {args.model} is data, not a model file; the model file comes first: "
            "crysatom predict MODEL DATA -o OUTPUT"
        )
    if args.data is None and not args.example:
        raise CLIError(
            f"no DATA to predict: give {INPUT_FORMATS}, or --example for the shipped example "
            "crystals"
        )
    output = _check_output_path(args.output, OUTPUT_SUFFIXES)
    _check_not_an_input(output, args.model, args.data)
    if args.parity:  # a bad plot path fails now, not after the predictions are written
        parity = _check_output_path(args.parity, FIGURE_SUFFIXES)
        _check_not_an_input(parity, args.model, args.data)
        if parity.resolve() == output.resolve():
            raise CLIError(f"--parity {args.parity} is the -o file; choose another name")
    model = _load_model(args.model, args.trust_pickle)
    if getattr(model, "_task", "regression") != "regression":
        raise CLIError(
            f"{args.model} holds a {type(model).__name__}; 'crysatom predict' writes the "
            "numbers of a regressor: predict classes in Python (crysatom_featurizers.estimators."
            "load_model(MODEL).predict(structures))"
        )
    table = read_input(args.data, args, use_id_prop=True, limit=args.limit)
    if not table.has_structures:
        raise CLIError(f"{args.data} holds no crystal structures; the model needs structures")
    if args.parity and "target" not in table.frame.columns:  # before any prediction
        raise CLIError("--parity needs targets (id_prop.csv in the folder, or --target)")
    errors = dict(table.errors)
    name = getattr(model, "embedding_name_", None)
    if name is not None:
        try:
            embedding = _load_embedding(name, getattr(model, "embedding_dim_", None))
        except (ValueError, OSError):
            embedding = None
        if embedding is not None:
            valid = [p for p in range(len(table.frame)) if p not in errors]
            errors.update(_check_coverage(table, embedding, valid))
    hint = "fix the data or pass --ignore-errors to keep going"
    if not args.ignore_errors:
        _raise_first_error(table, errors, hint)
    valid = [p for p in range(len(table.frame)) if p not in errors]
    predictions = np.full(len(table.frame), np.nan)
    if valid:
        try:
            values, row_errors = _predict_rows(
                model, [table.frame["structure"].iat[p] for p in valid], args
            )
        except (ValueError, TypeError, RuntimeError) as exc:
            raise CLIError(f"prediction failed: {short_error(exc)}; {hint}") from None
        if values.ndim > 1:
            raise CLIError("the model predicts several targets; the CLI handles one")
        predictions[valid] = values
        for offset, message in row_errors.items():
            errors[valid[offset]] = message
    result = table.frame[["id", "formula"]].copy()
    result["prediction"] = predictions
    has_target = "target" in table.frame.columns
    if has_target:
        result["target"] = table.frame["target"].to_numpy(dtype=float)
        result["abs_error"] = (result["prediction"] - result["target"]).abs()
    if args.ignore_errors:
        result[ERROR_COLUMN] = [errors.get(i) for i in range(len(result))]
    _write_table(result, output, args)
    units = f" {args.units}" if args.units else ""
    message = f"predicted {int(np.isfinite(predictions).sum())} of {len(result)} structures"
    if has_target:
        ok = np.isfinite(result["abs_error"].to_numpy())
        if ok.any():
            message += (
                f"; MAE against the given targets: {result['abs_error'][ok].mean():.4g}{units}"
            )
    _echo(args, f"{message} -> {output}")
    if args.parity:
        if not has_target:
            raise CLIError("--parity needs targets (id_prop.csv in the folder, or --target)")
        ok = np.isfinite(result["abs_error"].to_numpy())
        _use_agg()
        from crysatom_featurizers import plotting

        ax = plotting.plot_parity(
            result["target"][ok], result["prediction"][ok], units=args.units, label=args.target
        )
        _save_figure(ax.figure, Path(args.parity))
        _echo(args, f"parity plot -> {args.parity}")
    return 0
