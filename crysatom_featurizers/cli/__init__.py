"""The ``crysatom`` command line.

Subcommands
-----------
``crysatom embeddings list|show|export``
    Browse the embedding registry and write vectors to CSV or JSON.
``crysatom featurize``
    Element-embedding features of crystals (CIF folder, CSV with a ``formula`` or ``cif``
    column, a JSON table from matminer or pandas, or the shipped example crystals) at site,
    composition or structure level, written to CSV or parquet.
``crysatom train`` / ``crysatom predict``
    Fit a :class:`~crysatom_featurizers.estimators.CGCNNRegressor` on a CIF folder with an
    ``id_prop.csv`` (CGCNN convention) or a matminer JSON, save it with joblib, and predict.
``crysatom plot-embedding``
    PCA/t-SNE map, periodic-table heatmap or similarity matrix of an embedding.
``crysatom pretrain``
    Forwards to ``python -m training.pretrain`` in a repository checkout.

Every subcommand prints its options and examples with ``--help``. Errors are reported on one
line (``crysatom: error: ...``) with exit status 1 (2 for invalid options); ``--debug`` shows the
full traceback instead. ``python -m crysatom_featurizers`` runs the same program. Output files
are written atomically (see :func:`crysatom_featurizers.io.atomic_write`): a run that fails
while writing leaves an earlier file of the same name intact.

Modules: ``_common`` (shared helpers, :class:`CLIError`), ``embeddings`` (``embeddings`` and
``plot-embedding``), ``featurize``, ``models`` (``train`` and ``predict``) and ``parser``
(:func:`build_parser`); this module holds :func:`main` and the ``pretrain`` forwarding.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from crysatom_featurizers.cli._common import PROG, CLIError
from crysatom_featurizers.cli.parser import build_parser
from crysatom_featurizers.io import short_error

__all__ = ["CLIError", "build_parser", "main"]


# ------------------------------------------------------------------------------------------
# pretrain (forwarding)
# ------------------------------------------------------------------------------------------


def _pretrain_location() -> Path | None:
    """Folder holding the ``training`` package (a repository checkout), or None."""
    spec = importlib.util.find_spec("training.pretrain") if _training_importable() else None
    if spec is not None and spec.origin:
        return Path(spec.origin).resolve().parents[1]
    candidate = Path.cwd() / "training" / "pretrain.py"
    if candidate.is_file():
        return Path.cwd()
    return None


def _training_importable() -> bool:
    try:
        return importlib.util.find_spec("training") is not None
    except (ImportError, ValueError):
        return False


PRETRAIN_HELP = """\
usage: crysatom pretrain [ARGS ...]

Pretrain CrysAtom element vectors. This forwards ARGS unchanged to
`python -m training.pretrain`, which lives in the repository's training/ folder
(a source checkout, not the installed package). Run it from the repository root.

examples:
  crysatom pretrain --help                 # the pretraining script's own options
  crysatom pretrain --config training/configs/cpu.yaml --dim 200
"""


def _cmd_pretrain(forwarded: list[str], debug: bool) -> int:
    root = _pretrain_location()
    if root is None:
        print(PRETRAIN_HELP, file=sys.stderr)
        print(
            f"{PROG}: error: pretraining needs the repository's training/ package, which is not "
            "installed with the library; clone the repository and run this command (or "
            "`python -m training.pretrain`) from its root",
            file=sys.stderr,
        )
        return 1
    command = [sys.executable, "-m", "training.pretrain", *forwarded]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH", "")]))
    if debug:
        print("running: " + " ".join(command), file=sys.stderr)
    return subprocess.call(command, cwd=root, env=env)


def _known_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [
        CLIError,
        ValueError,
        TypeError,
        KeyError,
        OSError,
        ImportError,
        RuntimeError,
        FloatingPointError,
    ]
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``crysatom`` program.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status: 0 on success, 1 on errors, 2 on invalid options, 130 when interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    # 'pretrain' forwards everything after it untouched.
    head = [a for a in argv if a not in ("--debug", "-q", "--quiet")]
    if head and head[0] == "pretrain":
        rest = argv[argv.index("pretrain") + 1 :]
        if rest in (["-h"], ["--help"]):
            print(PRETRAIN_HELP)
            if _pretrain_location() is None:
                return 0
            print("options of python -m training.pretrain:\n", flush=True)
        return _cmd_pretrain(rest, debug)

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 0 if not argv else 2  # bare `crysatom` asks for help; options alone are a misuse
    args.debug = getattr(args, "debug", False)
    args.quiet = getattr(args, "quiet", False)
    try:
        with warnings.catch_warnings():
            if not args.debug:
                # pymatgen and torch warn about data quirks the messages already cover.
                warnings.simplefilter("ignore", UserWarning)
                warnings.simplefilter("ignore", FutureWarning)
            return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except _known_errors() as exc:
        if args.debug:
            raise
        print(f"{PROG}: error: {short_error(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # anything unexpected still gets one line
        if args.debug:
            raise
        print(
            f"{PROG}: error: unexpected {type(exc).__name__}: {short_error(exc)} "
            "(rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
