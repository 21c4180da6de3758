"""The trigger twin's checkpoint file under concurrent lanes: every save is durable when it returns, and
saves made meanwhile share one file write (group commit) instead of one fsync each."""

from __future__ import annotations

import threading
from pathlib import Path

from backend.local.checkpoint import CheckpointStore, ShardCheckpoint

STREAM = "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/1"


def test_a_save_is_on_disk_when_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints.json"
    store = CheckpointStore(path)
    store.save(STREAM, "shard-1", ShardCheckpoint("100"))
    assert CheckpointStore(path).get(STREAM, "shard-1") == ShardCheckpoint("100")


def test_a_sync_already_covered_by_a_later_write_does_not_write_again(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints.json"
    store = CheckpointStore(path)
    first = store.put(STREAM, "shard-1", ShardCheckpoint("100"))
    second = store.put(STREAM, "shard-2", ShardCheckpoint("200"))
    store.sync(second)  # one write holds both
    written = path.stat().st_ino  # every write replaces the file (a new inode)
    store.sync(first)
    assert path.stat().st_ino == written
    reread = CheckpointStore(path)
    assert reread.get(STREAM, "shard-1") == ShardCheckpoint("100")
    assert reread.get(STREAM, "shard-2") == ShardCheckpoint("200")


def test_a_put_not_yet_synced_is_not_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints.json"
    store = CheckpointStore(path)
    store.save(STREAM, "shard-1", ShardCheckpoint("100"))
    store.put(STREAM, "shard-1", ShardCheckpoint("150"))  # as if the trigger died before its sync
    assert CheckpointStore(path).get(STREAM, "shard-1") == ShardCheckpoint("100")


def test_concurrent_saves_leave_every_shards_last_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints.json"
    store = CheckpointStore(path)
    shards, saves = 8, 25

    def lane(index: int) -> None:
        for sequence in range(1, saves + 1):
            store.save(STREAM, f"shard-{index}", ShardCheckpoint(str(sequence)))
            # Durable on return: a fresh reader sees this checkpoint or a later one of the same shard.
            seen = CheckpointStore(path).get(STREAM, f"shard-{index}")
            assert seen is not None and seen.sequence_number is not None
            assert int(seen.sequence_number) >= sequence

    threads = [threading.Thread(target=lane, args=(i,)) for i in range(shards)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = CheckpointStore(path).shards(STREAM)
    assert final == {f"shard-{i}": ShardCheckpoint(str(saves)) for i in range(shards)}
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_forgetting_closed_shards_is_durable(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints.json"
    store = CheckpointStore(path)
    store.save(STREAM, "old", ShardCheckpoint("9", closed=True))
    store.save(STREAM, "open", ShardCheckpoint("5"))
    store.forget_shards(STREAM, keep={"open"})
    assert CheckpointStore(path).shards(STREAM) == {"open": ShardCheckpoint("5")}
