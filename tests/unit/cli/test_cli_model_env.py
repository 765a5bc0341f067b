"""`mlkube model register` of an MLflow folder through `main()`: the Model records its
environment, the derived Environment is created after it, clashes are refused before any
write, `--environment` must exist and `--no-environment` skips (in-memory API)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlkube.cli import model as model_cmd
from mlkube.cli.env_curated import MLFLOW_BASE
from mlkube.cli.main import main
from support.fake_kube import DEFAULT_KINDS, FakeKube

API = "mlkube.dev/v1alpha1"


class FakeModelApi:
    """Models through the same in-memory API the Environments go to (`.kube`)."""

    def __init__(self) -> None:
        self.kube = FakeKube(kinds={*DEFAULT_KINDS, (API, "Environment")})
        self.default_namespace = "team"

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.kube.get(API, "Model", name, namespace)

    def list(self, namespace: str, label_selector: str = "") -> list[dict[str, Any]]:
        return self.kube.list(API, "Model", namespace, label_selector or None)

    def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.kube.create({**body, "metadata": {**body["metadata"], "namespace": namespace}})


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeModelApi:
    fake = FakeModelApi()
    monkeypatch.setattr(model_cmd, "connect", lambda args: (fake, "team"))
    return fake


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "m" / "data").mkdir(parents=True)
    (tmp_path / "m" / "MLmodel").write_text("flavors: {sklearn: {pickled_model: data/m.pkl}}\n")
    (tmp_path / "m" / "data" / "m.pkl").write_bytes(b"weights")
    (tmp_path / "m" / "requirements.txt").write_text("mlflow==2.16.0\nlightgbm==4.5.0\n")
    return tmp_path / "m"


def register(folder: Path, *extra: str) -> int:
    return main(
        [
            "model",
            "register",
            "--name",
            "churn",
            "--version",
            "3",
            "--path",
            str(folder),
            "--in-place",
            *extra,
        ]
    )


def test_mlflow_register_derives_the_environment_and_records_it(
    api: FakeModelApi, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert register(folder) == 0
    out = capsys.readouterr().out
    model = api.kube.stored(API, "Model", "churn-v3", "team")
    assert model["spec"]["properties"] == {"environment": "churn-env:3"}
    env = api.kube.stored(API, "Environment", "churn-env-3", "team")
    assert env["spec"]["build"] == {"base": MLFLOW_BASE, "pip": ["lightgbm==4.5.0"]}
    assert "environment: churn-env:3 derived from requirements.txt" in out
    assert "left out mlflow==2.16.0" in out
    writes = [key[1] for verb, key in api.kube.writes if verb == "create"]
    assert writes == ["Model", "Environment"]


def test_a_different_existing_environment_is_refused_before_the_model_is_created(
    api: FakeModelApi, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api.kube.put(
        {
            "apiVersion": API,
            "kind": "Environment",
            "metadata": {"name": "other", "namespace": "team"},
            "spec": {"environmentName": "churn-env", "version": "3", "image": "reg/x:1"},
        }
    )
    assert register(folder) == 1
    assert "churn-env:3 already exists in team with other inputs" in capsys.readouterr().err
    assert api.kube.get(API, "Model", "churn-v3", "team") is None


def test_named_environment_must_exist_and_no_environment_skips(
    api: FakeModelApi, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert register(folder, "--environment", "lgbm:1") == 1
    assert "--environment lgbm:1: no such Environment in team" in capsys.readouterr().err
    assert register(folder, "--environment", "mlkube-mlflow:0.1.0") == 0
    model = api.kube.stored(API, "Model", "churn-v3", "team")
    assert model["spec"]["properties"] == {"environment": "mlkube-mlflow:0.1.0"}
    api.kube.put(
        {
            "apiVersion": API,
            "kind": "Environment",
            "metadata": {"name": "my-lgbm", "namespace": "team"},
            "spec": {"environmentName": "lgbm", "version": "2", "image": "r/x:1"},
        }
    )
    assert register(folder, "--environment", "my-lgbm", "--version", "5") == 0
    model = api.kube.stored(API, "Model", "churn-v5", "team")
    assert model["spec"]["properties"] == {"environment": "lgbm:2"}  # recorded as name:version
    assert (
        main(
            [
                "model",
                "register",
                "--name",
                "churn",
                "--version",
                "4",
                "--path",
                str(folder),
                "--in-place",
                "--no-environment",
            ]
        )
        == 0
    )
    assert "properties" not in api.kube.stored(API, "Model", "churn-v4", "team")["spec"]
    names = [e["metadata"]["name"] for e in api.kube.list(API, "Environment", "team")]
    assert names == ["my-lgbm"]  # none derived
