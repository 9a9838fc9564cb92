"""Which code trains a run: imacsr's version and the git commit of its checkout, with a dirty flag.

Read from the checkout that holds the imported ``imacsr_cli`` package, with local git commands only
(no network). Outside a git checkout (an installed wheel), or without git, commit and dirty are None:
never an error. A package installed inside some other repository (a venv in a project folder) is not
mistaken for that repository's code: the checkout's top level must be the package's parent folder.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from imacsr_cli import __version__
from imacsr_cli.rundir.files import CodeVersion

GIT_TIMEOUT_S = 10.0


def package_root() -> Path:
    """The folder that holds the imported ``imacsr_cli`` package (a checkout, or site-packages)."""
    import imacsr_cli

    return Path(imacsr_cli.__file__).resolve().parent.parent


def code_version(root: Path | None = None) -> CodeVersion:
    root = package_root() if root is None else root
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root.resolve():
        return CodeVersion(__version__, None, None)
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:  # a repository without a commit yet
        return CodeVersion(__version__, None, None)
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return CodeVersion(__version__, commit, None if status is None else bool(status))


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                             timeout=GIT_TIMEOUT_S, stdin=subprocess.DEVNULL,
                             env={"GIT_OPTIONAL_LOCKS": "0", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path.home()),
                                  "GIT_TERMINAL_PROMPT": "0"})
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip()

