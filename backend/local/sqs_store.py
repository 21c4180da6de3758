"""The SQS twin's queues, durable in SQLite: what SQS does with a standard queue's messages, for the calls
the project makes (send, receive with a visibility timeout and long polling, delete, change visibility,
depth, and the redrive policy that moves a message to the dead-letter queue by its receive count).

One database file in the data dir (WAL, ``synchronous=FULL``: a message acknowledged by SendMessage
survives a kill -9 of the twin and of the machine's page cache flush alike), created 0600. Every change is
one transaction, so two processes (the twin's server and a test reading depth) never see half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from backend.local.private_files import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE

DEFAULT_VISIBILITY_TIMEOUT: Final = 30
DEFAULT_RETENTION_SECONDS: Final = 345_600  # 4 days, SQS's default
MAX_RECEIVE_BATCH: Final = 10
MAX_WAIT_SECONDS: Final = 20
# A long poll sleeps until a send in this process wakes it, the next hidden message becomes visible, or
# this much time has passed (a send by another process on the same file is seen within it).
_LONGEST_NAP_SECONDS: Final = 0.5
_PURGE_EVERY_MS: Final = 60_000  # messages past the retention period are deleted at most this often

Clock = Callable[[], float]


class SqsError(Exception):
    """An SQS error: its code (the JSON protocol's ``__type`` suffix) and the query-compatible code."""

    def __init__(self, code: str, message: str, query_code: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.query_code = query_code or code
        self.status = status


@dataclass(frozen=True)
class QueueSettings:
    """A queue's attributes as the template declares them (``AWS::SQS::Queue`` properties)."""

    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT
    retention_seconds: int = DEFAULT_RETENTION_SECONDS
    dead_letter_queue: str | None = None  # the dead-letter queue's name
    max_receive_count: int | None = None


@dataclass(frozen=True)
class Received:
    message_id: str
    receipt_handle: str
    body: str
    md5_of_body: str
    sent_at_ms: int
    receive_count: int
    first_receive_ms: int


@dataclass(frozen=True)
class Depth:
    visible: int
    in_flight: int
    oldest_sent_ms: int | None  # the oldest message still in the queue (visible or not)


def md5_of(body: str) -> str:
    return hashlib.md5(body.encode("utf-8")).hexdigest()  # what SQS returns, not a security hash


class QueueStore:
    """The queues of one SQS twin, in ``path`` (created 0600 in a 0700 directory)."""

    def __init__(self, path: Path, clock: Clock = time.time) -> None:
        self.path = path
        self._clock = clock
        self._local = threading.local()
        self._arrived = threading.Condition()
        self._purged_ms = 0
        path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE))
        self._db().executescript(  # its own transaction (executescript commits first)
            """
                CREATE TABLE IF NOT EXISTS queues (name TEXT PRIMARY KEY, settings TEXT NOT NULL,
                                                   created_ms INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS messages (
                    id TEXT PRIMARY KEY, queue TEXT NOT NULL, body TEXT NOT NULL, md5 TEXT NOT NULL,
                    sent_ms INTEGER NOT NULL, visible_ms INTEGER NOT NULL, receives INTEGER NOT NULL,
                    first_receive_ms INTEGER, receipt TEXT);
                CREATE INDEX IF NOT EXISTS ready ON messages (queue, visible_ms, sent_ms);
                CREATE INDEX IF NOT EXISTS by_receipt ON messages (receipt);
                """
        )
        for suffix in ("-wal", "-shm"):  # SQLite creates these with the process umask; keep them private
            extra = path.with_name(path.name + suffix)
            if extra.exists():
                extra.chmod(PRIVATE_FILE_MODE)

    # ------------------------------------------------------------------------------------ plumbing
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            self._local.db = db
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -------------------------------------------------------------------------------------- queues
    def create_queue(self, name: str, settings: QueueSettings) -> None:
        """Create ``name``, or bring its settings to ``settings`` (the template may have changed)."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO queues (name, settings, created_ms) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET settings = excluded.settings",
                (name, json.dumps(settings.__dict__), self._now_ms()),
            )

    def settings(self, name: str) -> QueueSettings:
        row = self._db().execute("SELECT settings FROM queues WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise SqsError(
                "QueueDoesNotExist",
                "The specified queue does not exist.",
                "AWS.SimpleQueueService.NonExistentQueue",
            )
        return QueueSettings(**json.loads(row[0]))

    def queue_names(self) -> list[str]:
        return [row[0] for row in self._db().execute("SELECT name FROM queues ORDER BY name")]

    def created_ms(self, name: str) -> int:
        self.settings(name)
        row = self._db().execute("SELECT created_ms FROM queues WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    # ------------------------------------------------------------------------------------ messages
    def send(self, queue: str, body: str, delay_seconds: int = 0) -> tuple[str, str]:
        """(message id, md5 of the body)."""
        self.settings(queue)
        if not body:
            raise SqsError("MissingParameter", "The request must contain the parameter MessageBody.")
        message_id = str(uuid.uuid4())
        now = self._now_ms()
        digest = md5_of(body)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO messages (id, queue, body, md5, sent_ms, visible_ms, receives) "
                "VALUES (?, ?, ?, ?, ?, ?, 0)",
                (message_id, queue, body, digest, now, now + delay_seconds * 1000),
            )
        with self._arrived:
            self._arrived.notify_all()
        return message_id, digest

    def receive(
        self,
        queue: str,
        max_messages: int = 1,
        visibility_timeout: int | None = None,
        wait_seconds: float = 0,
        stop: threading.Event | None = None,
    ) -> list[Received]:
        """Up to ``max_messages`` visible messages, hidden for the visibility timeout; waits up to
        ``wait_seconds`` for the first one (long polling). A message already received
        ``max_receive_count`` times moves to the dead-letter queue instead of being returned."""
        settings = self.settings(queue)
        if not 1 <= max_messages <= MAX_RECEIVE_BATCH:
            raise SqsError("InvalidParameterValue", "MaxNumberOfMessages must be between 1 and 10.")
        if not 0 <= wait_seconds <= MAX_WAIT_SECONDS:
            raise SqsError("InvalidParameterValue", "WaitTimeSeconds must be between 0 and 20.")
        hidden_for = settings.visibility_timeout if visibility_timeout is None else visibility_timeout
        deadline = time.monotonic() + wait_seconds
        while True:
            got = self._receive_now(queue, settings, max_messages, hidden_for)
            left = deadline - time.monotonic()
            if got or left <= 0 or (stop is not None and stop.is_set()):
                return got
            nap = min(left, _LONGEST_NAP_SECONDS)
            next_visible = (
                self._db()
                .execute("SELECT MIN(visible_ms) FROM messages WHERE queue = ?", (queue,))
                .fetchone()[0]
            )
            if next_visible is not None:
                nap = max(0.001, min(nap, (next_visible - self._now_ms()) / 1000))
            with self._arrived:
                self._arrived.wait(nap)

    def _receive_now(
        self, queue: str, settings: QueueSettings, max_messages: int, hidden_for: int
    ) -> list[Received]:
        now = self._now_ms()
        if now - self._purged_ms > _PURGE_EVERY_MS:
            self._purged_ms = now
            # Every queue, each by its own retention: a dead-letter queue is seldom received from, and
            # its messages expire all the same.
            retentions = [(name, self.settings(name).retention_seconds) for name in self.queue_names()]
            with self._transaction() as db:
                for name, retention_seconds in retentions:
                    db.execute(
                        "DELETE FROM messages WHERE queue = ? AND sent_ms < ?",
                        (name, now - retention_seconds * 1000),
                    )
        # A read first: an idle queue costs no write transaction (and no fsync) per poll.
        ready = (
            self._db()
            .execute("SELECT 1 FROM messages WHERE queue = ? AND visible_ms <= ? LIMIT 1", (queue, now))
            .fetchone()
        )
        if ready is None:
            return []
        received: list[Received] = []
        with self._transaction() as db:
            rows = db.execute(
                "SELECT id, body, md5, sent_ms, receives, first_receive_ms FROM messages "
                "WHERE queue = ? AND visible_ms <= ? ORDER BY sent_ms, id LIMIT ?",
                (queue, now, max_messages * 4),
            ).fetchall()
            for message_id, body, digest, sent_ms, receives, first_receive in rows:
                if len(received) == max_messages:
                    break
                dead_letter = settings.dead_letter_queue
                if dead_letter and settings.max_receive_count and receives >= settings.max_receive_count:
                    # As SQS: the receive that would exceed maxReceiveCount moves it instead. The message
                    # keeps its id, body and enqueue time (a standard queue's dead-letter retention and
                    # oldest age count from the original send); its receive count starts again there.
                    db.execute(
                        "UPDATE messages SET queue = ?, visible_ms = ?, receives = 0, receipt = NULL, "
                        "first_receive_ms = NULL WHERE id = ?",
                        (dead_letter, now, message_id),
                    )
                    continue
                receipt = f"{message_id}#{uuid.uuid4().hex}"
                first = first_receive if first_receive is not None else now
                db.execute(
                    "UPDATE messages SET visible_ms = ?, receives = receives + 1, receipt = ?, "
                    "first_receive_ms = ? WHERE id = ?",
                    (now + hidden_for * 1000, receipt, first, message_id),
                )
                received.append(Received(message_id, receipt, body, digest, sent_ms, receives + 1, first))
        return received

    def delete(self, queue: str, receipt_handle: str) -> None:
        """Delete the message this receipt handle came with (as SQS: a stale handle of a message still
        in the queue deletes it too; a handle of a message already gone does nothing, as SQS answers it;
        a handle that is not one of the twin's is an error)."""
        self.settings(queue)
        if "#" not in receipt_handle:
            raise SqsError(
                "ReceiptHandleIsInvalid",
                f'The input receipt handle "{receipt_handle}" is not a valid receipt handle.',
            )
        message_id = receipt_handle.split("#", 1)[0]
        with self._transaction() as db:
            db.execute("DELETE FROM messages WHERE queue = ? AND id = ?", (queue, message_id))

    def change_visibility(self, queue: str, receipt_handle: str, timeout: int) -> None:
        self.settings(queue)
        if not 0 <= timeout <= 43_200:
            raise SqsError("InvalidParameterValue", "VisibilityTimeout must be between 0 and 43200.")
        now = self._now_ms()
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE messages SET visible_ms = ? WHERE queue = ? AND receipt = ? AND visible_ms > ?",
                (now + timeout * 1000, queue, receipt_handle, now),
            ).rowcount
        if not changed:
            raise SqsError(
                "MessageNotInflight",
                "The message referred to isn't in flight.",
                "AWS.SimpleQueueService.MessageNotInflight",
            )

    def depth(self, queue: str) -> Depth:
        self.settings(queue)
        now = self._now_ms()
        visible, in_flight, oldest = (
            self._db()
            .execute(
                "SELECT COALESCE(SUM(visible_ms <= ?), 0), COALESCE(SUM(visible_ms > ?), 0), MIN(sent_ms) "
                "FROM messages WHERE queue = ?",
                (now, now, queue),
            )
            .fetchone()
        )
        return Depth(int(visible), int(in_flight), int(oldest) if oldest is not None else None)

    def close(self) -> None:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def settings_from_attributes(
    attributes: Mapping[str, Any], queue_name_of_arn: Callable[[str], str]
) -> QueueSettings:
    """QueueSettings from CreateQueue/SetQueueAttributes-style attributes (strings, RedrivePolicy JSON)."""
    redrive = attributes.get("RedrivePolicy")
    dead_letter: str | None = None
    max_receives: int | None = None
    if redrive:
        policy = json.loads(redrive) if isinstance(redrive, str) else dict(redrive)
        dead_letter = queue_name_of_arn(str(policy["deadLetterTargetArn"]))
        max_receives = int(policy["maxReceiveCount"])
    return QueueSettings(
        visibility_timeout=int(attributes.get("VisibilityTimeout", DEFAULT_VISIBILITY_TIMEOUT)),
        retention_seconds=int(attributes.get("MessageRetentionPeriod", DEFAULT_RETENTION_SECONDS)),
        dead_letter_queue=dead_letter,
        max_receive_count=max_receives,
    )
