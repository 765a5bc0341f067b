"""Settings from env and CLI, and the `python -m mlkube_serving` command table."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlkube_serving.__main__ import COMMANDS, dispatch
from mlkube_serving.metrics import reset_multiprocess_dir
from mlkube_serving.server import parse_settings
from mlkube_serving.settings import (
    Settings,
    SettingsError,
    settings_from_env,
    settings_to_env,
)


def test_defaults_come_from_the_contract() -> None:
    settings = settings_from_env({})
    assert settings == Settings()
    assert settings.http_port == 8080
    assert settings.metrics_port == 8082
    assert settings.model_dir == "/mnt/models"


def test_env_values_are_typed() -> None:
    env = {
        "MLKUBE_MODEL_NAME": "credit",
        "MLKUBE_WORKERS": "4",
        "MLKUBE_REQUEST_TIMEOUT_SECONDS": "2.5",
        "MLKUBE_DRIFT_SAMPLE_RATE": "0.25",
        "MLKUBE_MODEL_VERSION": "",  # empty means unset
    }
    settings = settings_from_env(env)
    assert (settings.model_name, settings.workers, settings.request_timeout) == ("credit", 4, 2.5)
    assert settings.drift_sample_rate == 0.25
    assert settings.model_version is None
    assert settings_from_env(settings_to_env(settings)) == settings


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("MLKUBE_WORKERS", "two", "not a valid int"),
        ("MLKUBE_WORKERS", "0", "positive"),
        ("MLKUBE_DRIFT_SAMPLE_RATE", "1.5", "between 0 and 1"),
    ],
)
def test_bad_env_values_name_the_variable(name: str, value: str, reason: str) -> None:
    with pytest.raises(SettingsError, match=reason) as info:
        settings_from_env({name: value})
    assert name in info.value.message


def test_cli_options_override_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLKUBE_MODEL_NAME", "from-env")
    monkeypatch.setenv("MLKUBE_HTTP_PORT", "9000")
    settings = parse_settings(["--name", "from-cli", "--workers", "3", "--model-dir", "/m"])
    assert settings.model_name == "from-cli"
    assert settings.http_port == 9000
    assert settings.workers == 3
    assert settings.model_dir == "/m"


def test_dispatch_table_and_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert {"serve", "storage-initializer"} <= set(COMMANDS)
    assert dispatch(["no-such-command"]) == 2
    assert "unknown command" in capsys.readouterr().err
    assert dispatch(["--help"]) == 0
    assert "serve" in capsys.readouterr().out


def test_metrics_reset_removes_only_sample_files(tmp_path: Path) -> None:
    (tmp_path / "counter_123.db").write_bytes(b"old")
    (tmp_path / "keep.txt").write_text("not ours")
    reset_multiprocess_dir(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
