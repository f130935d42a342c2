"""The data directory holds message bodies, users' password hashes and definitions: it is the
owner's alone. Directories are made 0700 and files 0600 whatever the process's umask (a
container's is often 0022, a CI runner's 0000), with an explicit ``chmod`` after creating, as
umask can only take bits away. Opening an existing file with ``O_CREAT`` sets its mode too, so
files an older Leveret left readable are tightened as they are opened.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

DIR_MODE = 0o700
FILE_MODE = 0o600


def open_fd(path: str | os.PathLike[str], flags: int) -> int:
    """``os.open``; a file it may create is the owner's only (0600)."""
    fd = os.open(path, flags, FILE_MODE)
    if flags & os.O_CREAT:
        try:
            os.fchmod(fd, FILE_MODE)
        except BaseException:
            os.close(fd)
            raise
    return fd


def create(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> IO[Any]:
    """``open(path, mode)`` for writing a new file (truncated if it exists), 0600."""
    if mode not in ("w", "wb"):
        raise ValueError(f"create() writes a new file: mode 'w' or 'wb', not {mode!r}")
    fd = open_fd(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    return os.fdopen(fd, mode, **kwargs)


def make_dir(path: Path, root: Path | None = None) -> None:
    """Create ``path`` (and its missing parents below ``root``, if given) as 0700; an
    existing ``path`` is made 0700 too."""
    missing: list[Path] = []
    p = path
    while not p.exists() and p != root and p.parent != p:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(DIR_MODE)
        except FileExistsError:
            pass
    os.chmod(path, DIR_MODE)
