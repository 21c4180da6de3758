"""The trigger twin's durable per-shard checkpoints, and the atomic file writes it relies on.

File shape (docs/internal-contracts.md, "Trigger twin files")::

    {"<streamArn>": {"<shardId>": {"sequenceNumber": "..." | null, "closed": bool}}}

``sequenceNumber`` is the last record of the shard that is done with (delivered, filtered out or given up
on); the poller resumes AFTER it. ``null`` means "nothing done yet, start at the shard's beginning".
``closed`` means the shard ended and every record of it is done, so its children may start.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str, *, durable: bool = True) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, never a mix.

    Writes a temporary file in the same directory and renames it over the target. ``durable`` also
    fsyncs the file and the directory, so the new content survives a crash of the machine, not only of
    the process (checkpoints need that; the dashboard's state file does not).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        # A failed write leaves no stray temporary file behind.
        Path(temp_name).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_directory(path.parent)


def atomic_write_json(path: Path, data: Any, *, durable: bool = True) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n", durable=durable)


def append_line_durably(path: Path, line: str) -> None:
    """Append one line (JSONL) and fsync it: used for the failure destination, which must not lose lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line.rstrip("\n") + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_directory(directory: Path) -> None:
    # The rename is only durable once the directory entry is; not every platform can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class ShardCheckpoint:
    """Where one shard stands."""

    sequence_number: str | None
    closed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"sequenceNumber": self.sequence_number, "closed": self.closed}


class CheckpointStore:
    """Checkpoints of every shard of every stream the trigger has read, kept in one JSON file.

    Each :meth:`save` rewrites the whole file atomically and durably before it returns: a crash at any
    moment leaves either the previous or the new checkpoint, so a restart neither loses records nor
    re-delivers done ones.

    Thread-safe, with group commit: :meth:`put` records a checkpoint in memory (cheap; callers serialise
    their own compare-and-set around it) and :meth:`sync` makes it durable. A sync whose checkpoint a
    later file write already holds returns at once, so concurrent batches ending together cost one
    write and fsync, not one each; and no caller holds a lock of its own during an fsync.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data: dict[str, dict[str, dict[str, Any]]] = self._read()
        self._data_lock = threading.Lock()  # _data and _version
        self._file_lock = threading.Lock()  # one file write at a time; _written
        self._version = 0  # bumped by every change of _data
        self._written = 0  # the version the file holds durably

    def _read(self) -> dict[str, dict[str, dict[str, Any]]]:
        if not self.path.is_file():
            return {}
        data = json.loads(self.path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{self.path} is not a checkpoint file")
        return data

    def has_stream(self, stream_arn: str) -> bool:
        """True once anything was recorded for this stream (it is not the first start on it)."""
        with self._data_lock:
            return stream_arn in self._data

    def get(self, stream_arn: str, shard_id: str) -> ShardCheckpoint | None:
        with self._data_lock:
            entry = self._data.get(stream_arn, {}).get(shard_id)
        if entry is None:
            return None
        return ShardCheckpoint(entry.get("sequenceNumber"), bool(entry.get("closed", False)))

    def shards(self, stream_arn: str) -> dict[str, ShardCheckpoint]:
        with self._data_lock:
            entries = dict(self._data.get(stream_arn, {}))
        return {
            shard_id: ShardCheckpoint(entry.get("sequenceNumber"), bool(entry.get("closed", False)))
            for shard_id, entry in entries.items()
        }

    def save(self, stream_arn: str, shard_id: str, checkpoint: ShardCheckpoint) -> None:
        """Record the shard's checkpoint and return once the file holds it durably."""
        self.sync(self.put(stream_arn, shard_id, checkpoint))

    def put(self, stream_arn: str, shard_id: str, checkpoint: ShardCheckpoint) -> int:
        """Record the shard's checkpoint in memory; the version to pass to :meth:`sync`."""
        with self._data_lock:
            self._data.setdefault(stream_arn, {})[shard_id] = checkpoint.to_json()
            self._version += 1
            return self._version

    def sync(self, version: int) -> None:
        """Return once the file durably holds ``version`` (or a later one): writes it unless a write
        made since already did."""
        with self._file_lock:
            if self._written >= version:
                return
            with self._data_lock:
                text = json.dumps(self._data, indent=1, sort_keys=True) + "\n"
                latest = self._version
            atomic_write_text(self.path, text, durable=True)
            self._written = latest

    def forget_shards(self, stream_arn: str, keep: set[str]) -> None:
        """Drop closed shards that the stream no longer lists (trimmed after 24 hours)."""
        with self._data_lock:
            shards = self._data.get(stream_arn, {})
            gone = [s for s, entry in shards.items() if s not in keep and entry.get("closed")]
            for shard_id in gone:
                del shards[shard_id]
            if gone:
                self._version += 1
            version = self._version
        if gone:
            self.sync(version)
