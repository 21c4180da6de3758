"""The data dir holds every request body, the API key and DynamoDB Local's database: only its owner may
read it. ``make up`` creates it 0700, tightens one made by an older version, and runs every component with
umask 077 so that what they create (the database, checkpoints, the key) is private too."""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def secure_data_dir(data_dir: Path) -> None:
    """Create ``data_dir`` 0700 (or tighten it), and make every file already under it owner-only."""
    data_dir.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    for directory, _subdirs, files in os.walk(data_dir):
        _tighten(Path(directory), PRIVATE_DIR_MODE)
        for name in files:
            _tighten(Path(directory) / name, PRIVATE_FILE_MODE)


def _tighten(path: Path, most: int) -> None:
    """Drop every permission bit beyond ``most`` (never adds any)."""
    mode = stat.S_IMODE(path.lstat().st_mode)
    if path.is_symlink() or mode & ~most == 0:
        return
    path.chmod(mode & most)
