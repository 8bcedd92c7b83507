from __future__ import annotations

import re
from pathlib import Path

import pytest

from superior_one.config import ENV_FILE_VARIABLE, Settings, env_files

ENV_EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"
# An optional setting may be documented as a commented-out line ("# SO_X=default").
SETTING_LINE = re.compile(r"^(?:# )?SO_([A-Z0-9_]+)=", re.MULTILINE)


def test_env_example_documents_every_setting() -> None:
    documented = {m.group(1).lower() for m in SETTING_LINE.finditer(ENV_EXAMPLE.read_text())}
    assert set(Settings.model_fields) - documented == set()


def test_env_example_has_no_unknown_settings() -> None:
    documented = {m.group(1).lower() for m in SETTING_LINE.finditer(ENV_EXAMPLE.read_text())}
    assert documented - set(Settings.model_fields) == set()


def test_settings_secrets_are_secret_str() -> None:
    settings = Settings()
    assert "change-me" not in repr(settings)


def test_env_files_ignore_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_FILE_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SO_REDIS_NAMESPACE=from-the-working-directory\n")

    assert env_files() == (ENV_EXAMPLE.parent / ".env",)


def test_env_files_named_file_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "second.env").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ENV_FILE_VARIABLE, "second.env")

    assert env_files() == (ENV_EXAMPLE.parent / ".env", tmp_path / "second.env")


def test_env_files_missing_named_file_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_FILE_VARIABLE, str(tmp_path / "missing.env"))

    with pytest.raises(FileNotFoundError, match=r"missing\.env"):
        env_files()


def _write_env_files(tmp_path: Path) -> tuple[Path, Path]:
    first, second = tmp_path / "first.env", tmp_path / "second.env"
    first.write_text("SO_REDIS_NAMESPACE=first\nSO_LOG_LEVEL=WARNING\nSO_BOARD_COUNT_CAP=7\n")
    second.write_text("SO_REDIS_NAMESPACE=second\nSO_LOG_LEVEL=ERROR\n")
    return first, second


def test_settings_later_env_file_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SO_REDIS_NAMESPACE", raising=False)
    monkeypatch.delenv("SO_BOARD_COUNT_CAP", raising=False)

    settings = Settings(_env_file=_write_env_files(tmp_path))

    assert settings.redis_namespace == "second"
    assert settings.board_count_cap == 7


def test_settings_environment_wins_over_env_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SO_LOG_LEVEL", "DEBUG")

    settings = Settings(_env_file=_write_env_files(tmp_path))

    assert settings.log_level == "DEBUG"
