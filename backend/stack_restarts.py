"""The supervisor's restart file, typed: one definition for the writer (``backend.local.restarts``) and
every reader (the health page, the chaos test).

Light imports only (no boto3): the dashboard reads this file on every refresh. The file and its shape are
described in docs/internal-contracts.md ("Supervisor file").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

# Under the data dir; the supervisor writes it, :func:`read_restarts` reads it.
RESTARTS_FILE: Final = Path("stack") / "restarts.json"


class ComponentState(StrEnum):
    RUNNING = "running"
    RESTARTING = "restarting"  # dead, waiting for its backoff to restart it
    GAVE_UP = "gave up"  # died too often within the window: the supervisor stopped the stack
    STOPPED = "stopped"  # the stack was stopped (Ctrl-C, or because another component gave up)


@dataclass(frozen=True)
class ComponentRestarts:
    """One component of the local stack as the supervisor last saw it."""

    name: str
    state: ComponentState = ComponentState.RUNNING
    restarts: int = 0
    pid: int | None = None
    last_exit: str | None = None  # "killed by SIGKILL", "exited with code 1"
    last_exit_at: int | None = None  # epoch ms
    last_restart_at: int | None = None  # epoch ms
    deaths_in_window: int = 0  # deaths within the crash window (docs/operations.md)

    def to_json(self) -> dict[str, Any]:
        """The component's entry in the file (its name is the entry's key)."""
        return {
            "restarts": self.restarts,
            "state": self.state.value,
            "pid": self.pid,
            "lastExit": self.last_exit,
            "lastExitAt": self.last_exit_at,
            "lastRestartAt": self.last_restart_at,
            "deathsInWindow": self.deaths_in_window,
        }

    @classmethod
    def from_json(cls, name: str, entry: Mapping[str, Any]) -> ComponentRestarts:
        """Raises ValueError (or TypeError, KeyError) when ``entry`` is not a component's entry."""
        return cls(
            name=name,
            state=ComponentState(entry["state"]),
            restarts=int(entry.get("restarts") or 0),
            pid=_optional_int(entry.get("pid")),
            last_exit=_optional_str(entry.get("lastExit")),
            last_exit_at=_optional_int(entry.get("lastExitAt")),
            last_restart_at=_optional_int(entry.get("lastRestartAt")),
            deaths_in_window=int(entry.get("deathsInWindow") or 0),
        )


@dataclass(frozen=True)
class StackRestarts:
    """What the supervisor of ``make up`` reports: each component, and why it stopped the stack if it did."""

    started_at: int  # epoch ms
    updated_at: int  # epoch ms
    stopped_because: str | None = None
    components: tuple[ComponentRestarts, ...] = field(default_factory=tuple)

    def component(self, name: str) -> ComponentRestarts:
        """The component called ``name``; KeyError if the supervisor does not run one."""
        for component in self.components:
            if component.name == name:
                return component
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """The file's document."""
        return {
            "startedAt": self.started_at,
            "updatedAt": self.updated_at,
            "stoppedBecause": self.stopped_because,
            "components": {c.name: c.to_json() for c in self.components},
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> StackRestarts:
        """The restarts of a document; raises ValueError when it is not the supervisor's file."""
        try:
            components = document["components"]
            return cls(
                started_at=int(document["startedAt"]),
                updated_at=int(document["updatedAt"]),
                stopped_because=_optional_str(document.get("stoppedBecause")),
                components=tuple(
                    ComponentRestarts.from_json(str(name), entry) for name, entry in components.items()
                ),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"not the supervisor's restart file: {error!r}") from error


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def read_restarts(data_dir: Path) -> StackRestarts | None:
    """The supervisor's latest restart state, or None when ``make up`` never ran with this data dir.

    Raises ValueError when the file is there but is not the supervisor's (the health page says so)."""
    path = data_dir / RESTARTS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error}") from error
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{path} is not JSON: {error}") from error
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not the supervisor's restart file (not an object)")
    return StackRestarts.from_json(document)
