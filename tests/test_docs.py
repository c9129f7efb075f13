"""The documentation: generated pages that agree with the result files, an API reference that
covers every public name, a README that fits on a screen, and a results folder of data."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def test_generated_pages_and_readme_blocks_agree_with_the_result_files():
    pytest.importorskip("crysatom_featurizers.embeddings")
    sys.path.insert(0, str(DOCS))
    try:
        import generate
    finally:
        sys.path.remove(str(DOCS))
    assert generate.main(["--check"]) == 0, "run python docs/generate.py"


def test_the_generated_blocks_hold_the_numbers_of_the_result_files():
    sys.path.insert(0, str(DOCS))
    try:
        import generate
    finally:
        sys.path.remove(str(DOCS))
    cells = generate.curve_cells()
    row = cells[(cells["property"] == "mbj_bandgap") & (cells["n_train"] == 100)].iloc[0]
    table = (DOCS / "_generated" / "which_features.md").read_text()
    assert f"| {row['cgcnn_mae']:.3g} eV |" in table
    assert f"{row['potential']:.2f}×" in (REPO / "README.md").read_text()
    # a block that is edited by hand no longer matches
    readme = (REPO / "README.md").read_text()
    edited = readme.replace(f"{row['potential']:.2f}×", "0.01×", 1)
    blocks = {"evidence": generate.evidence(cells), "which": generate.readme_table(cells)}
    regenerated = generate.with_blocks(edited, blocks)
    assert regenerated == readme


def _api_entries() -> dict[str, set[str]]:
    entries: dict[str, set[str]] = {}
    module = None
    for line in (DOCS / "api.rst").read_text().splitlines():
        match = re.match(r"\.\. currentmodule:: (\S+)", line)
        if match:
            module = match.group(1)
            entries[module] = set()
        elif module and re.match(r"   [A-Za-z_][\w]*$", line):
            entries[module].add(line.strip())
    return entries


def test_the_api_reference_covers_every_public_name():
    pytest.importorskip("torch", reason="the graph and network modules need the [gnn] extra")
    entries = _api_entries()
    assert "crysatom_featurizers.estimators" in entries
    for module, names in entries.items():
        public = set(importlib.import_module(module).__all__)
        if module == "crysatom_featurizers.nn.pretrained":  # the rest is under nn
            public -= set(importlib.import_module("crysatom_featurizers.nn").__all__)
        assert names == public, (module, sorted(public - names), sorted(names - public))
    documented = set(entries)
    for package in ("embeddings", "featurizers", "estimators", "graphs", "nn", "potentials"):
        assert f"crysatom_featurizers.{package}" in documented


def test_the_readme_fits_on_a_screen_and_links_into_the_docs():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    for target in re.findall(r"\]\(((?:docs|examples)/[^)#]*)\)", text) + ["CHANGELOG.md"]:
        assert (REPO / target).exists(), target


def _tracked(path: str) -> list[str]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", path], cwd=REPO, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [p for p in out.decode().split("\0") if p]


def test_the_results_folder_holds_data_not_pictures_or_weights():
    files = _tracked("training/results")
    if not files:
        pytest.skip("no tracked result files")
    size = sum((REPO / f).stat().st_size for f in files if (REPO / f).exists())
    # the aim is 10 MB; 2.5 MB of it are two 1,200-dim candidate vector files still stored as
    # plain JSON
    assert size <= 13 * 2**20, f"{size / 2**20:.1f} MiB tracked under training/results"
    binary = [f for f in files if Path(f).suffix in {".png", ".pt", ".ckpt", ".pth"}]
    assert not binary, binary[:5]
