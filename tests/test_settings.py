from __future__ import annotations

import re
from pathlib import Path

from superior_one.config import Settings

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
