"""Files only the server's own user may read: the data folder 0700; database, keys and recordings 0600.

Each is *created* with its mode, never chmod'ed afterwards, so there is no moment in which another
user could open it. Files made by libraries (SQLite's -wal/-shm, PyAV's recordings, the composer's
output) get theirs from the process umask, which ``rapport serve`` and its workers set first thing.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def restrict_new_files() -> int:
    """From now on this process and its children create files 0600 and folders 0700; returns the old umask."""
    return os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """Make ``path`` (0700) if it is missing. An existing folder others can read is tightened, with a warning."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        # A folder from an older version or made by hand: what is inside must not stay readable to others.
        log.warning("%s was readable by other users (mode %o): making it %o", path, mode, PRIVATE_DIR_MODE)
        try:
            path.chmod(mode & PRIVATE_DIR_MODE)
        except OSError as exc:
            log.warning("could not restrict %s: %s", path, exc)
    return path


def create_private(path: Path) -> int:
    """Open a new file for writing, created 0600. O_EXCL: never over an existing file or through a planted link."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), PRIVATE_FILE_MODE)


def write_private(path: Path, data: bytes) -> None:
    """Create ``path`` 0600 with ``data``; FileExistsError if it is there already."""
    with os.fdopen(create_private(path), "wb") as fh:
        fh.write(data)


def precreate_private(path: Path) -> None:
    """Create an empty ``path`` 0600 unless it exists, so a library that opens it later keeps that mode."""
    try:
        os.close(create_private(path))
    except FileExistsError:
        pass
