"""The data dir and what is in it are the owner's alone; the banner says truly where the key came from."""

from __future__ import annotations

import stat
from pathlib import Path

from backend.local.private_files import secure_data_dir
from backend.local.supervisor import banner
from backend.settings import Settings


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_data_dir_is_created_0700(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "data"
    secure_data_dir(data)
    assert _mode(data) == 0o700


def test_an_existing_data_dir_and_database_are_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "dynamodb").mkdir(parents=True, mode=0o755)
    data.chmod(0o755)
    database = data / "dynamodb" / "shared-local-instance.db"
    database.write_bytes(b"bodies")
    database.chmod(0o644)
    executable = data / "tool"
    executable.write_text("")
    executable.chmod(0o755)
    secure_data_dir(data)
    assert _mode(data) == _mode(data / "dynamodb") == 0o700
    assert _mode(database) == 0o600
    assert _mode(executable) == 0o700 & 0o600  # only bits are removed, never added: rw for the owner


def test_the_banner_says_a_generated_key_is_kept_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", STREAMDESK_API_KEY=None)
    text = banner(settings)
    assert f"kept in {tmp_path / 'data' / 'api-key'}" in text
    assert (tmp_path / "data" / "api-key").is_file()


def test_the_banner_says_a_given_key_came_from_the_environment(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", STREAMDESK_API_KEY="given-key-0123456789")
    text = banner(settings)
    assert "from STREAMDESK_API_KEY" in text
    assert "kept in" not in text
    assert not (tmp_path / "data" / "api-key").exists()
