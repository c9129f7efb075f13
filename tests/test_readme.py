"""The Python examples of the README and the documentation run as written (the dask recipe
needs a real scheduler)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
#: The README and the documentation's pages: their Python examples run as written.
PAGES = [README, *sorted((README.parent / "docs").glob("**/*.md"))]
BLOCKS = [
    block
    for page in PAGES
    if "_build" not in page.parts
    for block in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
]
# Blocks that talk to external services are shown, not run.
RUNNABLE = [block for block in BLOCKS if "scheduler-host" not in block]


def test_readme_has_python_examples():
    assert len(RUNNABLE) >= 4


@pytest.mark.parametrize("index", range(len(RUNNABLE)))
def test_readme_block_runs(index, tmp_path, monkeypatch):
    pytest.importorskip("crysatom_featurizers.embeddings").load("crysatom", dim=200)
    if re.search(
        r"CGCNN|ALIGNN|CrystalGraphTransformer|crysatom_featurizers\.(nn|graphs)", RUNNABLE[index]
    ):
        pytest.importorskip("torch", reason="this example needs the [gnn] extra")
    if "UniversalPotential" in RUNNABLE[index]:
        pytest.importorskip("chgnet", reason="this example needs the [potentials] extra")
    monkeypatch.chdir(tmp_path)
    exec(
        compile(RUNNABLE[index], f"README.md python block {index}", "exec"), {"__name__": "readme"}
    )


def test_readme_setup_commands_match_ci():
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    commands = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    install, tests = commands[0].strip(), commands[1].strip()
    assert "crysatom featurize --example" in install
    assert tests in ci.splitlines()
