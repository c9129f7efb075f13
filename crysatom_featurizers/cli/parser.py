"""The ``crysatom`` argument parser."""

from __future__ import annotations

import argparse
import textwrap

from crysatom_featurizers.cli._common import (
    ERROR_COLUMN,
    LEVELS,
    PROG,
    STAT_NAMES,
)
from crysatom_featurizers.cli.embeddings import (
    _cmd_embeddings_export,
    _cmd_embeddings_list,
    _cmd_embeddings_show,
    _cmd_plot_embedding,
)
from crysatom_featurizers.cli.featurize import _cmd_featurize
from crysatom_featurizers.cli.models import _cmd_predict, _cmd_train
from crysatom_featurizers.embeddings import DEFAULT_EMBEDDING


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("general options")
    group.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback on errors",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="no progress bars or summary lines",
    )
    return common


def _wrap(text: str, width: int = 88) -> str:
    """Wrap each paragraph (the raw formatter keeps the epilog's example lines as written)."""
    return "\n\n".join(textwrap.fill(p, width) for p in text.split("\n\n"))


def _subparser(subparsers, name: str, common, help: str, description: str, epilog: str):
    return subparsers.add_parser(
        name,
        help=help,
        description=_wrap(description),
        epilog=epilog,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _add_embedding_options(parser: argparse.ArgumentParser, *, default: str | None) -> None:
    parser.add_argument(
        "--embedding",
        "-e",
        default=default,
        metavar="NAME",
        help=f"element embedding (see 'crysatom embeddings list'; default: {default})",
    )
    parser.add_argument(
        "--dim",
        type=_positive_int,
        default=None,
        help="vector dimension (default: the embedding's)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``crysatom`` argument parser (exposed for documentation tools and tests)."""
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "CrysAtom element embeddings as crystal descriptors, and CGCNN property models, "
            "from the command line."
        ),
        epilog=(
            "examples:\n"
            "  crysatom featurize --example -o example_features.csv\n"
            "  crysatom embeddings list\n"
            "  crysatom featurize cifs/ -o features.parquet --level structure -e skipatom\n"
            "  crysatom train data/ -o model.joblib --epochs 50\n"
            "  crysatom <command> --help   # options and examples of one command"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars or summary lines"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")

    # embeddings ------------------------------------------------------------------------
    emb = _subparser(
        subparsers,
        "embeddings",
        common,
        "list, show and export element embeddings",
        "Browse the registry of element embeddings.",
        "examples:\n"
        "  crysatom embeddings list\n"
        "  crysatom embeddings show crysatom --dim 100\n"
        "  crysatom embeddings export skipatom --format csv -o skipatom.csv",
    )
    emb_sub = emb.add_subparsers(dest="action", metavar="ACTION")
    emb_sub.required = True
    p = _subparser(
        emb_sub,
        "list",
        common,
        "every registered embedding and its dimensions",
        "List every registered embedding, its dimensions and a description.",
        "example:\n  crysatom embeddings list",
    )
    p.set_defaults(handler=_cmd_embeddings_list)
    p = _subparser(
        emb_sub,
        "show",
        common,
        "metadata and element coverage of one embedding",
        "Print an embedding's metadata (source, citation, corpus, licence, checksum) and the "
        "elements it covers.",
        "examples:\n  crysatom embeddings show skipatom\n  crysatom embeddings show crysatom --dim 50",
    )
    p.add_argument("name", metavar="NAME", help="embedding name")
    p.add_argument("--dim", type=_positive_int, default=None, help="vector dimension")
    p.set_defaults(handler=_cmd_embeddings_show)
    p = _subparser(
        emb_sub,
        "export",
        common,
        "write an embedding's vectors to CSV or JSON",
        "Write an embedding's vectors to a file: CSV (one row per element, columns "
        "NAME_0..NAME_{dim-1}) or this package's JSON format (vectors and metadata).",
        "examples:\n"
        "  crysatom embeddings export crysatom --dim 200 --format json -o crysatom_200.json\n"
        "  crysatom embeddings export skipatom -o skipatom.csv",
    )
    p.add_argument("name", metavar="NAME", help="embedding name")
    p.add_argument("--dim", type=_positive_int, default=None, help="vector dimension")
    p.add_argument(
        "--format", choices=("csv", "json"), default=None, help="default: from the extension"
    )
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="output file")
    p.set_defaults(handler=_cmd_embeddings_export)

    # featurize -------------------------------------------------------------------------
    p = _subparser(
        subparsers,
        "featurize",
        common,
        "element-embedding features of crystals or formulas",
        "Compute element-embedding features and write them as CSV or parquet.\n\n"
        "INPUT is a folder of .cif files, a single .cif, a CSV with a 'formula' or a 'cif' "
        "column (CIF text or a path relative to the CSV), or a table saved as .json/.json.gz "
        "by matminer's store_dataframe_as_json or pandas' DataFrame.to_json (a 'structure', "
        "'cif', 'composition' or 'formula' column). Without INPUT (or with "
        "--example) the example crystals that ship with the package are featurized, offline.\n\n"
        "Levels: 'composition' pools the element vectors of the formula with weighted "
        "statistics; 'structure' pools over the sites; 'site' writes one row per site.",
        "examples:\n"
        "  crysatom featurize --example -o example_features.csv\n"
        "  crysatom featurize cifs/ -o features.parquet --level structure\n"
        "  crysatom featurize formulas.csv -o features.csv -e skipatom --stats mean max\n"
        "  crysatom featurize data.json.gz -o sites.csv --level site --embedding crysatom --dim 50\n"
        "  crysatom featurize formulas.csv -o features.csv --ignore-errors",
    )
    p.add_argument("input", nargs="?", metavar="INPUT", help="CIF folder, .cif, .csv or .json(.gz)")
    p.add_argument("--example", action="store_true", help="featurize the shipped example crystals")
    p.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="output .csv, .csv.gz or .parquet"
    )
    p.add_argument("--level", choices=LEVELS, default="composition", help="default: composition")
    _add_embedding_options(p, default=DEFAULT_EMBEDDING)
    p.add_argument(
        "--stats",
        nargs="+",
        choices=STAT_NAMES,
        default=None,
        metavar="STAT",
        help="statistics pooled over elements or sites (default: mean std_dev min max range)",
    )
    p.add_argument(
        "--ignore-errors",
        action="store_true",
        help=f"keep going on bad rows: NaN features and a message in an '{ERROR_COLUMN}' column",
    )
    p.add_argument("--limit", type=_positive_int, default=None, help="only the first N rows")
    p.set_defaults(handler=_cmd_featurize)

    # train -----------------------------------------------------------------------------
    p = _subparser(
        subparsers,
        "train",
        common,
        "fit a CGCNN or ALIGNN regressor and save it",
        "Fit a CGCNNRegressor, or an ALIGNNRegressor with --model alignn (element embedding as "
        "frozen input node features), and save it. "
        "A .safetensors model file holds plain data and weights only and is safe to share and "
        "load; a .joblib/.pkl file is a pickle, which 'crysatom predict' loads only with "
        "--trust-pickle.\n\n"
        "DATA is a CGCNN-style folder (one ID.cif per structure and an id_prop.csv with lines "
        "'ID,target', no header) or a matminer .json/.json.gz / .csv with --target COLUMN. "
        "A share of the training rows (--val-fraction) is held out to pick the best epoch; its "
        "MAE is printed. --test-fraction holds out a further test set that the fit never sees.",
        "examples:\n"
        "  crysatom train cgcnn_data/ -o model.safetensors --epochs 100\n"
        "  crysatom train jarvis.json.gz --target formation_energy_peratom --units eV/atom \\\n"
        "      -o eform.safetensors -e crysatom --limit 2000 --test-fraction 0.1 "
        "--plot-dir plots/\n"
        "  crysatom train cgcnn_data/ -o alignn.safetensors --model alignn -e cgcnn\n"
        "  crysatom predict model.safetensors new_cifs/ -o predictions.csv",
    )
    p.add_argument("data", metavar="DATA", help="CIF folder with id_prop.csv, or .json(.gz)/.csv")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="MODEL",
        help="output model file: .safetensors (safe to share), or .joblib (a pickle)",
    )
    p.add_argument("--target", default=None, metavar="COLUMN", help="target column (json/csv)")
    p.add_argument("--units", default=None, help="target units for messages, e.g. eV/atom")
    p.add_argument(
        "--model",
        default="cgcnn",
        metavar="NETWORK",
        help="the graph network, by its registered name: cgcnn, alignn (with bond angles), or "
        "one that another package registers (default: cgcnn)",
    )
    p.add_argument(
        "--preset",
        choices=("cpu", "paper"),
        default=None,
        help="with --model alignn: 'cpu' (width 64, 1 + 1 layers) or 'paper' (256, 4 + 4) "
        "(default: cpu)",
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        metavar="FILE",
        help="save the fit's state here after every epoch; run the same command again to "
        "resume an interrupted fit from it",
    )
    _add_embedding_options(p, default=None)
    p.add_argument(
        "--site-features",
        default=None,
        metavar="POTENTIAL",
        help="feed the network a universal potential's frozen per-site vectors (chgnet or "
        "sevennet; needs the [potentials] extra), in place of the element vectors unless "
        "--embedding is also given",
    )
    transfer = p.add_argument_group(
        "transfer from a pretrained encoder (see 'crysatom embeddings list')"
    )
    source = transfer.add_mutually_exclusive_group()
    source.add_argument(
        "--finetune",
        metavar="ENCODER",
        default=None,
        help="start from the encoder (e.g. crysatom, or an encoder .pt file) and train it with "
        "a new head; its width, depth and input vectors replace --atom-fea-len, --n-conv and "
        "--embedding",
    )
    source.add_argument(
        "--distill",
        metavar="ENCODER",
        default=None,
        help="train with CrysGNN's distillation loss against the frozen encoder, or a universal "
        "potential's site vectors (chgnet, sevennet)",
    )
    transfer.add_argument(
        "--distill-delta",
        type=float,
        default=0.5,
        help="weight of the property loss with --distill, in (0, 1] (default: 0.5)",
    )
    transfer.add_argument(
        "--freeze-encoder-epochs",
        default="0",
        metavar="N|all",
        help="with --finetune: keep the encoder frozen for N epochs, or 'all' (default: 0)",
    )
    transfer.add_argument(
        "--encoder-lr",
        type=float,
        default=None,
        help="with --finetune: learning rate of the encoder (default: --lr)",
    )
    p.add_argument("--epochs", type=_positive_int, default=100, help="default: 100")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="default: 64")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default: 1e-3)")
    recipe = p.add_argument_group(
        "training recipe (the ALIGNN paper's: --optimizer adamw --weight-decay 1e-5 "
        "--lr-schedule onecycle --epochs 300)"
    )
    recipe.add_argument(
        "--optimizer", choices=("adam", "adamw"), default=None, help="default: adam"
    )
    recipe.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help="L2 penalty (adam) or decoupled weight decay (adamw); default: 0",
    )
    recipe.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine", "step", "onecycle"),
        default=None,
        help="default: constant; onecycle is stepped after every mini-batch",
    )
    recipe.add_argument(
        "--warmup-epochs",
        type=int,
        default=None,
        help="raise the rate linearly over the first N epochs (default: 0)",
    )
    p.add_argument(
        "--atom-fea-len", type=_positive_int, default=None, help="default: 64 (or the encoder's)"
    )
    p.add_argument(
        "--n-conv", type=_positive_int, default=None, help="default: 3 (or the encoder's)"
    )
    p.add_argument("--h-fea-len", type=_positive_int, default=None, help="default: 128")
    p.add_argument("--val-fraction", type=float, default=0.1, help="default: 0.1")
    p.add_argument("--test-fraction", type=float, default=0.0, help="default: 0 (no test set)")
    p.add_argument("--patience", type=_positive_int, default=None, help="early-stopping epochs")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    p.add_argument("--limit", type=_positive_int, default=None, help="only the first N rows")
    p.add_argument("--plot-dir", default=None, help="write learning-curve (and parity) plots")
    p.add_argument("--ignore-errors", action="store_true", help="drop unreadable or uncovered rows")
    p.add_argument(
        "--allow-isolated",
        action="store_true",
        help="keep structures with a site that has no neighbour within the cutoff (its node "
        "gets no messages) instead of refusing them",
    )
    p.set_defaults(handler=_cmd_train)

    # predict ---------------------------------------------------------------------------
    p = _subparser(
        subparsers,
        "predict",
        common,
        "predict with a saved model",
        "Predict with a model saved by 'crysatom train' or by CGCNNRegressor.save (a "
        ".safetensors model file, which loading never unpickles). A pickle-based file (.joblib, "
        ".pkl: any joblib-saved estimator that takes pymatgen structures) can run arbitrary "
        "code when loaded; it is refused unless --trust-pickle says you trust it. DATA is read as by 'crysatom featurize'; when it has "
        "targets (id_prop.csv, or --target) they are written next to the predictions and the "
        "MAE is printed. Give DATA, or --example to predict the shipped example crystals.",
        "examples:\n"
        "  crysatom predict model.safetensors new_cifs/ -o predictions.csv\n"
        "  crysatom predict model.safetensors --example -o example_predictions.csv\n"
        "  crysatom predict model.safetensors test_data/ -o preds.csv --parity parity.png\n"
        "  crysatom predict my_own.joblib new_cifs/ -o p.csv --trust-pickle",
    )
    p.add_argument("model", metavar="MODEL", help="model file (.safetensors, or a pickle)")
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load a pickle-based model file (.joblib/.pkl); it can run any code it holds, so "
        "only for files you made or whose source you trust",
    )
    p.add_argument(
        "data",
        nargs="?",
        metavar="DATA",
        help="CIF folder, .cif, .csv or .json(.gz) (or --example)",
    )
    p.add_argument("--example", action="store_true", help="predict the shipped example crystals")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="output .csv or .parquet")
    p.add_argument("--target", default=None, metavar="COLUMN", help="target column (json/csv)")
    p.add_argument("--units", default=None, help="target units for messages and plots")
    p.add_argument("--parity", default=None, metavar="PNG", help="also write a parity plot")
    p.add_argument("--limit", type=_positive_int, default=None, help="only the first N rows")
    p.add_argument(
        "--ignore-errors", action="store_true", help="NaN and an error message for bad rows"
    )
    p.set_defaults(handler=_cmd_predict)

    # plot-embedding --------------------------------------------------------------------
    p = _subparser(
        subparsers,
        "plot-embedding",
        common,
        "plot an embedding (map, periodic table, similarity)",
        "Plot an element embedding: a 2-D PCA or t-SNE map with element labels, coloured by "
        "group or block (--kind map, the default); one vector component or the vector norm on "
        "a periodic table (--kind periodic-table); or the cosine-similarity matrix ordered by "
        "atomic number (--kind similarity).",
        "examples:\n"
        "  crysatom plot-embedding crysatom -o crysatom_pca.png\n"
        "  crysatom plot-embedding skipatom --method tsne --color block -o skipatom_tsne.png\n"
        "  crysatom plot-embedding crysatom --kind periodic-table --component 3 -o c3.png\n"
        "  crysatom plot-embedding atom2vec --kind similarity -o atom2vec_similarity.png",
    )
    p.add_argument("name", metavar="NAME", help="embedding name")
    p.add_argument("--dim", type=_positive_int, default=None, help="vector dimension")
    p.add_argument("--kind", choices=("map", "periodic-table", "similarity"), default="map")
    p.add_argument("--method", choices=("pca", "tsne"), default="pca", help="map projection")
    p.add_argument("--color", choices=("group", "block"), default="group", help="map colours")
    p.add_argument("--no-labels", action="store_true", help="map without element labels")
    p.add_argument(
        "--component", type=int, default=None, help="periodic-table: component (default: norm)"
    )
    p.add_argument("--dpi", type=_positive_int, default=150)
    p.add_argument("-o", "--output", required=True, metavar="FILE", help=".png, .pdf or .svg")
    p.set_defaults(handler=_cmd_plot_embedding)

    # pretrain (documented here; handled before parsing so that its options pass through)
    subparsers.add_parser(
        "pretrain",
        help="forward to 'python -m training.pretrain' (repository checkout)",
        add_help=False,
    )
    return parser


def _version() -> str:
    from crysatom_featurizers import __version__

    return __version__
