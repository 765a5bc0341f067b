from __future__ import annotations

import pytest

from mlkube.cli.main import main


def test_serve_refuses_a_missing_model_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--model", "/nonexistent/model.onnx"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_serve_is_listed_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "serve" in capsys.readouterr().out
