"""What every benchmark's JSON records about its run: the git commit it measured."""

from __future__ import annotations

import subprocess


def git_commit() -> str:
    """Short hash of HEAD in the current directory; "" when git or the repository is missing."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()
