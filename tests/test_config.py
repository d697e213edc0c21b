"""Settings precedence: defaults < environment < CLI flags < LSP initializationOptions."""

from __future__ import annotations

import pytest

from holefill.cli import _settings, build_parser
from holefill.config import Settings


def test_environment_overrides_defaults():
    s = Settings.from_env(
        {
            "HOLEFILL_MAX_NEW_TOKENS": "12",
            "HOLEFILL_TOKEN_HEALING": "false",
            "HOLEFILL_MODEL": "/models/x",
            "OTHER": "1",
        }
    )
    assert (s.max_new_tokens, s.token_healing, s.model) == (12, False, "/models/x")
    assert s.device == Settings().device


def test_cli_flags_override_environment(monkeypatch):
    monkeypatch.setenv("HOLEFILL_DEVICE", "cuda")
    monkeypatch.setenv("HOLEFILL_MAX_NEW_TOKENS", "12")
    args = build_parser().parse_args(["complete", "f.py:1:1", "--device", "cpu"])
    s = _settings(args)
    assert s.device == "cpu" and s.max_new_tokens == 12


def test_initialization_options_accept_camel_and_snake_case_and_ignore_unknown():
    s = Settings().updated({"maxNewTokens": 7, "token_healing": False, "futureSetting": 1})
    assert s.max_new_tokens == 7 and s.token_healing is False


def test_bad_value_is_a_clear_error():
    with pytest.raises(ValueError, match="max_new_tokens"):
        Settings().updated({"maxNewTokens": "many"})
