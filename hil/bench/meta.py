"""What every benchmark's JSON records about its run: the git commit it measured."""

from __future__ import annotations

import subprocess

from hil.daemonproc import REPO


def git_commit() -> str:
    """Short hash of the repository's HEAD (the code being measured, wherever the bench is run
    from); "" when git or the repository is missing."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=REPO,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()
