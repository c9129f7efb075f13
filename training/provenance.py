"""Provenance of produced files: git state, CPU model and package version.

One home for what pretraining, Atom2Vec, the probe and the benchmark record in their metadata.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def git_state() -> tuple[str | None, list[str] | None]:
    """``(HEAD commit, lines of git status --porcelain)``; ``(None, None)`` without git."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        status = git("status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, status.splitlines() if status else []


def git_commit() -> str | None:
    """HEAD commit, suffixed ``-dirty`` when the working tree differs from it."""
    commit, status = git_state()
    if commit is None:
        return None
    return commit + ("-dirty" if status else "")


def cpu_model() -> str:
    """CPU model name from ``/proc/cpuinfo``, else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def package_version() -> str:
    """Version of the installed ``crysatom_featurizers``."""
    try:
        from crysatom_featurizers import __version__
    except ImportError:
        return "unknown"
    return str(__version__)
