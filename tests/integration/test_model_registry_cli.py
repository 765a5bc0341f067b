"""`mlkube model ...` against the real API server with the real operator: models trained
elsewhere (a scikit-learn pickle, an MLflow folder, a multi-file custom model) register, verify
and are found by tag; duplicates are refused; archived models hide from `list`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import joblib
import pytest
import yaml
from kopf.testing import KopfRunner
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from mlkube.cli.main import main
from mlkube.contract import API_VERSION
from mlkube.devcluster import Cluster
from mlkube.k8s import ApiError, Kube
from mlkube.storage import compute_digest
from mlkube.storage.default_store import DefaultStore, with_extension
from support.waiting import wait_for


@pytest.fixture
def cli(cluster: Cluster, namespace: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    store = (tmp_path / "store").as_uri()

    def run(*args: str, with_store: bool = False) -> tuple[int, str, str]:
        argv = [*args, "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)]
        if with_store:
            argv += ["--store", store]
        elif args[:2] == ("model", "register"):
            argv.append("--in-place")  # the session cluster's kubeconfig names no store
        code = main(argv)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def pickle_path(tmp_path: Path) -> Path:
    x, y = make_classification(n_samples=200, n_features=20, random_state=0)
    path = tmp_path / "model.pkl"
    joblib.dump(LogisticRegression(max_iter=200).fit(x, y), path)
    return path


def ready_model(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        obj = kube.get(API_VERSION, "Model", name, namespace) or {}
        return obj if obj.get("status", {}).get("phase") in ("Ready", "Failed") else None

    obj: dict[str, Any] = wait_for(ready, what=f"Model {name} verified")
    assert obj["status"]["phase"] == "Ready", obj["status"]
    return obj


def test_register_a_pickle_then_find_it_by_tag(
    cli: Any, kube: Kube, namespace: str, pickle_path: Path, running_operator: KopfRunner
) -> None:
    code, out, err = cli("model", "register", "--name", "credit-risk", "--version", "1",
                         "--path", str(pickle_path), "--tag", "experiment=exp1",
                         with_store=True)  # fmt: skip
    assert code == 0, err
    assert "credit-risk-v1 created" in out
    code, _, err = cli("model", "register", "--name", "churn", "--version", "1",
                       "--path", str(pickle_path), "--tag", "experiment=exp2")  # fmt: skip
    assert code == 0, err

    obj = ready_model(kube, namespace, "credit-risk-v1")
    assert obj["spec"]["framework"] == "sklearn"
    uri = obj["spec"]["artifact"]["uri"]
    assert uri.startswith("file://") and f"/store/{namespace}/credit-risk/1/" in uri
    assert obj["status"]["artifact"]["digest"] == compute_digest(uri).digest
    assert obj["status"]["artifact"]["digest"] == obj["spec"]["artifact"]["digest"]

    code, out, _ = cli("model", "list", "--tag", "experiment=exp1")
    assert code == 0
    assert "credit-risk-v1" in out and "churn" not in out
    code, out, _ = cli("model", "list", "--tag", "experiment=exp1", "-o", "json")
    assert [i["metadata"]["name"] for i in json.loads(out)["items"]] == ["credit-risk-v1"]


def test_register_copies_into_the_contexts_default_store(
    cluster: Cluster,
    kube: Kube,
    namespace: str,
    tmp_path: Path,
    pickle_path: Path,
    running_operator: KopfRunner,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 18: without --store a local model was registered where it lay, so deleting or
    editing the file broke the Model. Now it is copied into the default store the kubeconfig
    context names, and the Model verifies after the file is gone."""
    monkeypatch.delenv("MLKUBE_STORE", raising=False)
    base = ["model", "register", "--name", "fraud", "-n", namespace, "--path", str(pickle_path)]
    # A kubeconfig that names no store: refused, nothing created, nothing registered in place.
    code = main([*base, "--version", "1", "--kubeconfig", str(cluster.kubeconfig)])
    assert code == 1
    assert "no artifact store" in capsys.readouterr().err
    assert kube.get(API_VERSION, "Model", "fraud-v1", namespace) is None

    store = tmp_path / "default-store"
    kubeconfig = tmp_path / "kubeconfig"
    doc = yaml.safe_load(cluster.kubeconfig.read_text())
    kubeconfig.write_text(yaml.safe_dump(with_extension(doc, DefaultStore(store.as_uri()))))
    assert main([*base, "--version", "2", "--kubeconfig", str(kubeconfig)]) == 0, (
        capsys.readouterr().err
    )
    pickle_path.unlink()
    obj = ready_model(kube, namespace, "fraud-v2")
    uri = obj["spec"]["artifact"]["uri"]
    assert uri.startswith(f"{store.as_uri()}/{namespace}/fraud/2/"), uri
    assert obj["status"]["artifact"]["digest"] == compute_digest(uri).digest


def test_registering_the_same_version_twice_is_refused(
    cli: Any, kube: Kube, namespace: str, pickle_path: Path
) -> None:
    args = ("model", "register", "--name", "credit-risk", "--version", "2",
            "--path", str(pickle_path))  # fmt: skip
    assert cli(*args)[0] == 0
    code, _, err = cli(*args)
    assert code == 1
    assert "already exists" in err and "credit-risk-v2" in err
    assert len(kube.list(API_VERSION, "Model", namespace)) == 1


def test_mlflow_folder_and_multi_file_models_verify(
    cli: Any,
    kube: Kube,
    namespace: str,
    tmp_path: Path,
    pickle_path: Path,
    running_operator: KopfRunner,
) -> None:
    mlflow = tmp_path / "mlflow-model"
    mlflow.mkdir()
    (mlflow / "MLmodel").write_text(
        "flavors:\n  sklearn:\n    pickled_model: model.pkl\n    sklearn_version: 1.5.0\n"
        "  python_function:\n    loader_module: mlflow.sklearn\n"
    )
    (mlflow / "model.pkl").write_bytes(pickle_path.read_bytes())
    (mlflow / "conda.yaml").write_text("name: env\ndependencies: [python=3.11]\n")
    (mlflow / "requirements.txt").write_text("scikit-learn\n")
    code, _, err = cli("model", "register", "--name", "fraud", "--version", "7",
                       "--path", str(mlflow), with_store=True)  # fmt: skip
    assert code == 0, err

    custom = tmp_path / "custom"
    (custom / "weights").mkdir(parents=True)
    (custom / "score.py").write_text("def init():\n    pass\n\ndef run(data):\n    return data\n")
    for i in range(3):
        (custom / "weights" / f"part-{i}.bin").write_bytes(bytes([i]) * 1000)
    code, _, err = cli("model", "register", "--name", "echo", "--version", "1",
                       "--path", str(custom), "--framework", "custom",
                       "--entrypoint", "score.py", with_store=True)  # fmt: skip
    assert code == 0, err

    fraud = ready_model(kube, namespace, "fraud-v7")
    assert fraud["spec"]["framework"] == "mlflow"
    assert fraud["status"]["artifact"]["fileCount"] == 4
    echo = ready_model(kube, namespace, "echo-v1")
    assert echo["status"]["artifact"]["fileCount"] == 4
    assert echo["status"]["artifact"]["size"] == 3000 + len((custom / "score.py").read_bytes())


def test_archived_models_hide_from_list_but_resolve(
    cli: Any, namespace: str, pickle_path: Path
) -> None:
    assert cli("model", "register", "--name", "old", "--version", "1",
               "--path", str(pickle_path))[0] == 0  # fmt: skip
    assert cli("model", "archive", "old:1")[0] == 0
    assert "old-v1" not in cli("model", "list")[1]
    assert "old-v1" in cli("model", "list", "--all")[1]
    code, out, _ = cli("model", "show", "old-v1")
    assert code == 0 and "old" in out


def test_baseline_profile_is_stored_beside_the_model(
    cli: Any, kube: Kube, namespace: str, tmp_path: Path, pickle_path: Path
) -> None:
    profile = tmp_path / "profile.json"
    profile.write_text('{"formatVersion": 1, "features": {}}')
    code, _, err = cli("model", "register", "--name", "credit-risk", "--version", "9",
                       "--path", str(pickle_path), "--baseline", str(profile),
                       with_store=True)  # fmt: skip
    assert code == 0, err
    obj = kube.get(API_VERSION, "Model", "credit-risk-v9", namespace) or {}
    baseline = obj["spec"]["baseline"]
    assert f"/store/{namespace}/credit-risk/9.baseline/" in baseline["uri"]
    assert baseline["uri"].endswith("/profile.json")
    assert baseline["digest"] == compute_digest(baseline["uri"]).digest


@pytest.fixture
def other_namespace(kube: Kube, namespace: str) -> Iterator[str]:
    name = f"{namespace}-b"
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    with contextlib.suppress(ApiError):
        kube.delete("v1", "Namespace", name)


def test_two_namespaces_registering_fraud_1_keep_separate_bytes(
    cluster: Cluster,
    kube: Kube,
    namespace: str,
    other_namespace: str,
    tmp_path: Path,
    pickle_path: Path,
    running_operator: KopfRunner,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Before: both wrote <store>/fraud/1/model.pkl; team b replaced the bytes team a's Ready
    Model relies on, and its serving pods failed verification (or served team b's model)."""
    store = (tmp_path / "store").as_uri()
    other = tmp_path / "other" / "model.pkl"
    other.parent.mkdir()
    other.write_bytes(pickle_path.read_bytes() + b"\n# team b")

    def register(ns: str, path: Path, *extra: str) -> tuple[int, str]:
        code = main(["model", "register", "--name", "fraud", "--version", "1", "--path",
                     str(path), "--store", store, "-n", ns, "--kubeconfig",
                     str(cluster.kubeconfig), *extra])  # fmt: skip
        return code, capsys.readouterr().err

    code, err = register(namespace, pickle_path)
    assert code == 0, err
    mine = ready_model(kube, namespace, "fraud-v1")
    code, err = register(other_namespace, other)
    assert code == 0, err
    theirs = kube.get(API_VERSION, "Model", "fraud-v1", other_namespace) or {}
    mine_uri, theirs_uri = mine["spec"]["artifact"]["uri"], theirs["spec"]["artifact"]["uri"]
    assert f"/store/{namespace}/fraud/1/" in mine_uri
    assert f"/store/{other_namespace}/fraud/1/" in theirs_uri
    # Team a's bytes are still the ones its Model verified.
    assert compute_digest(mine_uri).digest == mine["status"]["artifact"]["digest"]
    assert compute_digest(theirs_uri).digest == theirs["spec"]["artifact"]["digest"]
    assert mine["status"]["artifact"]["digest"] != theirs["spec"]["artifact"]["digest"]

    # A second registration of team a's version with other bytes lands in another digest
    # folder and is refused by the API's create; the first one's bytes stay as they were.
    code, err = register(namespace, other)
    assert code == 1 and "already exists" in err
    assert compute_digest(mine_uri).digest == mine["status"]["artifact"]["digest"]


def test_overwrite_is_refused_while_any_namespace_uses_the_bytes(
    cluster: Cluster,
    kube: Kube,
    namespace: str,
    other_namespace: str,
    tmp_path: Path,
    pickle_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = (tmp_path / "store").as_uri()
    args = ["model", "register", "--name", "fraud", "--version", "2", "--path",
            str(pickle_path), "--store", store, "-n", namespace,
            "--kubeconfig", str(cluster.kubeconfig)]  # fmt: skip
    assert main(args) == 0
    mine = kube.get(API_VERSION, "Model", "fraud-v2", namespace) or {}
    uri = mine["spec"]["artifact"]["uri"]
    # Another namespace's Model uses the same artifact URI.
    borrowed = {**mine, "metadata": {"name": "borrowed", "namespace": other_namespace}}
    borrowed.pop("status", None)
    kube.create(borrowed)
    # Team a deletes its Model and the stored bytes get damaged; re-registering needs
    # --overwrite, which must not pull the bytes out from under team b's Model.
    kube.delete(API_VERSION, "Model", "fraud-v2", namespace)
    wait_for(lambda: kube.get(API_VERSION, "Model", "fraud-v2", namespace) is None,
             what="Model deleted")  # fmt: skip
    stored = Path(unquote(urlsplit(uri).path))
    stored.write_bytes(b"damaged")
    capsys.readouterr()
    assert main([*args, "--overwrite"]) == 1
    assert f"used by Model {other_namespace}/borrowed" in capsys.readouterr().err
    assert stored.read_bytes() == b"damaged"
    kube.delete(API_VERSION, "Model", "borrowed", other_namespace)
    wait_for(lambda: kube.get(API_VERSION, "Model", "borrowed", other_namespace) is None,
             what="Model deleted")  # fmt: skip
    assert main([*args, "--overwrite"]) == 0
    assert stored.read_bytes() == pickle_path.read_bytes()
