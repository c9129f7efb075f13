"""``crysatom embeddings list|show|export`` and ``crysatom plot-embedding``."""

from __future__ import annotations

import argparse
from pathlib import Path

from crysatom_featurizers.cli._common import (
    FIGURE_SUFFIXES,
    CLIError,
    _check_output_path,
    _echo,
    _load_embedding,
    _save_figure,
    _use_agg,
    user_errors,
)


def _cmd_embeddings_list(args: argparse.Namespace) -> int:
    from crysatom_featurizers.embeddings import available

    table = available()
    rows = []
    for _, row in table.iterrows():
        dims = row["dims"]
        if dims is None:
            dims_text = "any"
        elif len(dims) == 0:
            dims_text = "(not generated)"
        else:
            dims_text = ",".join(str(d) for d in dims)
        default = "" if row["default_dim"] is None else str(row["default_dim"])
        rows.append((row["name"], dims_text, default, str(row["description"] or "")))
    header = ("name", "dims", "default", "description")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(r[:3], widths)) + "  " + r[3]
        for r in [header, *rows]
    ]
    print("\n".join(lines))
    print("\n".join(["", *_encoder_lines()]))
    return 0


def _encoder_lines() -> list[str]:
    """The shipped pretrained encoders (they need the [gnn] extra)."""
    from crysatom_featurizers.deps import MissingGNNDependencyError, require_gnn

    try:
        require_gnn("listing the pretrained encoders")
    except MissingGNNDependencyError:
        return ["encoders: (pretrained CGCNN encoders need the [gnn] extra)"]
    from crysatom_featurizers.nn.pretrained import available_encoders

    lines = ["encoders (pretrained CGCNN encoders, crysatom_featurizers.nn.load_encoder):"]
    for row in available_encoders():
        state = "" if row["present"] else " (not generated)"
        lines.append(f"  {row['name']}{state}  {row['description']}")
    return lines


def _coverage_text(embedding) -> list[str]:
    from crysatom_featurizers.chemistry import atomic_number, element_symbol, is_element

    zs = [atomic_number(s) for s in embedding.symbols if is_element(s)]
    covered = set(zs)
    missing = [element_symbol(z) for z in range(1, 104) if z not in covered]
    symbols = " ".join(element_symbol(z) for z in sorted(covered))
    lines = [f"coverage: {len(embedding.symbols)} elements (Z {min(zs)}..{max(zs)})"]
    lines.append(f"  covered: {symbols}")
    lines.append(f"  missing (H..Lr): {' '.join(missing) if missing else 'none'}")
    return lines


def _cmd_embeddings_show(args: argparse.Namespace) -> int:
    embedding = _load_embedding(args.name, args.dim)
    metadata = dict(embedding.metadata)
    lines = [f"name: {embedding.name}", f"dim: {embedding.dim}", f"checksum: {embedding.checksum}"]
    skip = {"name", "dim", "checksum"}
    for key in sorted(metadata):
        if key in skip:
            continue
        value = metadata[key]
        if value in (None, "", [], {}):
            continue
        text = value if isinstance(value, str) else repr(value)
        if len(text) > 300:
            text = text[:297] + "..."
        lines.append(f"{key}: {text}")
    lines += _coverage_text(embedding)
    print("\n".join(lines))
    return 0


def _cmd_embeddings_export(args: argparse.Namespace) -> int:
    output = Path(args.output)
    fmt = args.format
    if fmt is None:
        name = output.name.lower()
        fmt = "json" if name.endswith(".json") else "csv" if name.endswith(".csv") else None
        if fmt is None:
            raise CLIError(f"cannot tell the format of {output}; pass --format csv or json")
    embedding = _load_embedding(args.name, args.dim)
    with user_errors():  # written atomically: a failed write leaves an older file intact
        if fmt == "csv":
            embedding.to_csv(output)
        else:
            embedding.to_json(output)
    _echo(
        args,
        f"wrote {embedding.name} ({embedding.dim}-dim, {len(embedding)} elements) as {fmt} "
        f"to {output}",
    )
    return 0


# ------------------------------------------------------------------------------------------
# plot-embedding
# ------------------------------------------------------------------------------------------


def _cmd_plot_embedding(args: argparse.Namespace) -> int:
    output = Path(args.output)
    _check_output_path(output, FIGURE_SUFFIXES)
    _use_agg()
    from crysatom_featurizers import plotting

    embedding = _load_embedding(args.name, args.dim)
    if args.kind == "map":
        ax = plotting.plot_embedding_map(
            embedding, method=args.method, color_by=args.color, annotate=not args.no_labels
        )
        what = f"{args.method.upper()} map coloured by {args.color}"
    elif args.kind == "similarity":
        ax = plotting.plot_similarity_heatmap(embedding)
        what = "cosine similarity matrix"
    else:
        import numpy as np

        if args.component is None:
            values = np.linalg.norm(np.asarray(embedding.vectors, dtype=float), axis=1)
            label, what = "vector norm", "periodic table of the vector norm"
        else:
            if not 0 <= args.component < embedding.dim:
                raise CLIError(
                    f"--component must be between 0 and {embedding.dim - 1}, got {args.component}"
                )
            values = np.asarray(embedding.vectors, dtype=float)[:, args.component]
            label = f"component {args.component}"
            what = f"periodic table of component {args.component}"
        ax = plotting.plot_periodic_table_heatmap(
            dict(zip(embedding.symbols, values)),
            title=f"{embedding.name} ({embedding.dim}-dim): {label}",
            colorbar_label=label,
        )
    _save_figure(ax.figure, output, dpi=args.dpi)
    _echo(args, f"wrote {what} of {embedding.name} ({embedding.dim}-dim) to {output}")
    return 0
