"""`mlkube env ...`, `model register` of an MLflow folder and `model package` against the real
API server (its schema and CEL rules for the Environment kind). No operator runs here: the
test writes the Environment and Model status as an admin would see the operator write it, so
what is proven is the CLI's side — the objects it creates, how it reads status, `--wait`
against a real watch of status changes, archive, and `build-logs` reading a real build pod's
container logs (a Job run by the real Job controller, its pod by the dev pod executor)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mlkube.cli import env_object, model_env, model_package
from mlkube.cli.main import main
from mlkube.contract import API_VERSION
from mlkube.devcluster import Cluster
from mlkube.k8s import Kube
from support.podexec import POD_ANNOTATIONS, PodExecutor, job_condition
from support.waiting import wait_for

pytestmark = pytest.mark.integration

DIGEST = "sha256:" + "e" * 64
IMAGE = f"127.0.0.1:5000/mlkube/environments@{DIGEST}"


@pytest.fixture
def cli(cluster: Cluster, namespace: str, capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*args: str) -> tuple[int, str, str]:
        code = main([*args, "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def ready_status(**extra: Any) -> dict[str, Any]:
    return {
        "phase": "Ready",
        "observedGeneration": 1,
        "image": IMAGE,
        "imageDigest": DIGEST,
        "sizeBytes": 3 * 1024 * 1024,
        "python": "3.11.2",
        "packages": ["lightgbm==4.5.0", "numpy==2.1.3"],
        "serving": {"compatible": True, "version": "0.1.0"},
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Built",
                "message": "",
                "lastTransitionTime": "2026-11-30T10:00:00Z",
                "observedGeneration": 1,
            }
        ],
        **extra,
    }


def write_status(
    kube: Kube, namespace: str, name: str, status: dict[str, Any], kind: str = "Environment"
) -> None:
    kube.patch(API_VERSION, kind, name, {"status": status}, namespace, subresource="status")


def later(seconds: float, action: Any) -> threading.Thread:
    def run() -> None:
        time.sleep(seconds)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_create_list_show_wait_and_archive(
    cli: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    (tmp_path / "requirements.txt").write_text("# for the ranker\nlightgbm==4.5.0\n")
    (tmp_path / "features.py").write_text("SCALE = 2\n")
    code, out, err = cli(
        "env",
        "create",
        "--name",
        "lgbm",
        "--version",
        "1",
        "--pip",
        str(tmp_path / "requirements.txt"),
        "--apt",
        "libgomp1",
        "--file",
        f"{tmp_path / 'features.py'}:/opt/app/features.py",
    )
    assert code == 0, err
    assert f"environment.mlkube.dev/lgbm-1 created in namespace {namespace} (lgbm:1)" in out
    stored = kube.get(API_VERSION, "Environment", "lgbm-1", namespace)
    assert stored is not None
    assert stored["spec"] == {
        "environmentName": "lgbm",
        "version": "1",
        "build": {
            "base": "mlkube-sklearn:0.1.0",
            "pip": ["lightgbm==4.5.0"],
            "apt": ["libgomp1"],
            "files": [{"path": "/opt/app/features.py", "content": "SCALE = 2\n", "mode": 0o644}],
        },
    }
    code, _, err = cli(
        "env",
        "create",
        "--name",
        "lgbm",
        "--version",
        "1",
        "--pip",
        str(tmp_path / "requirements.txt"),
    )
    assert code == 1 and "lgbm:1 already exists" in err

    # Nothing makes it Ready here: --wait gives up with 124 (the build would keep going).
    code, _, err = cli(
        "env",
        "create",
        "--name",
        "scorer",
        "--version",
        "2",
        "--image",
        "registry.example/scorer:2.1",
        "--wait",
        "1",
    )
    assert code == 124 and "still Pending after 1s" in err
    code, _, err = cli("env", "create", "-f", str(yaml_file(tmp_path)))
    assert code == 0, err
    taken = tmp_path / "taken.yaml"
    taken.write_text(
        yaml_file(tmp_path).read_text().replace("from-yaml", "lgbm-1").replace("yaml-env", "other")
    )
    code, _, err = cli("env", "create", "-f", str(taken))  # the API server's 409, said plainly
    assert code == 1 and f"cannot create Environment {namespace}/lgbm-1: it already exists" in err
    write_status(
        kube,
        namespace,
        "lgbm-1",
        ready_status(
            build={
                "job": "mlkube-system/envbuild-0123456789abcdef0123",
                "reused": False,
                "durationSeconds": 42,
            },
            usedBy=[{"kind": "OnlineEndpoint", "name": "shop", "deployment": "blue"}],
        ),
    )
    code, out, _ = cli("env", "show", "lgbm:1")
    assert code == 0
    assert f"Digest:       {DIGEST}" in out and "  lightgbm==4.5.0" in out
    assert "Used by:      OnlineEndpoint/shop (blue)" in out and "(built, 42s)" in out

    code, out, _ = cli("env", "list")
    rows = {line.split()[0] + ":" + line.split()[1]: line for line in out.splitlines()[1:]}
    assert set(rows) == {"lgbm:1", "scorer:2", "yaml-env:1"}
    assert "Ready" in rows["lgbm:1"] and "sha256:eeeeeeeeeeee" in rows["lgbm:1"]
    code, out, _ = cli("env", "list", "-o", "json")
    assert [i["metadata"]["name"] for i in json.loads(out)["items"]] == [
        "lgbm-1",
        "scorer-2",
        "from-yaml",
    ]

    code, out, _ = cli("env", "archive", "lgbm:1")
    assert code == 0 and "archived" in out
    _, out, _ = cli("env", "list")
    assert "lgbm " not in out
    _, out, _ = cli("env", "list", "--all")
    assert "lgbm " in out


def yaml_file(tmp_path: Path) -> Path:
    path = tmp_path / "env.yaml"
    path.write_text(
        "apiVersion: mlkube.dev/v1alpha1\nkind: Environment\n"
        "metadata: {name: from-yaml}\nspec: {environmentName: yaml-env, "
        "version: '1', image: 'registry.example/y:1'}\n"
    )
    return path


def test_wait_reports_the_image_once_ready(cli: Any, kube: Kube, namespace: str) -> None:
    later(
        1.5,
        lambda: write_status(
            kube, namespace, "scorer-2", ready_status(resolvedFrom="registry.example/scorer:2.1")
        ),
    )
    code, out, err = cli(
        "env",
        "create",
        "--name",
        "scorer",
        "--version",
        "2",
        "--image",
        "registry.example/scorer:2.1",
        "--wait",
        "60",
    )
    assert code == 0, err
    assert "scorer:2 is Ready" in out and f"image:    {IMAGE}" in out


def build_job(name: str) -> dict[str, Any]:
    def container(cname: str, text: str) -> dict[str, Any]:
        return {
            "name": cname,
            "image": "ignored:by-the-executor",
            "command": ["python", "-c", f"print({text!r}, flush=True)"],
        }

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": POD_ANNOTATIONS},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "initContainers": [
                        container("tools", "tools copied"),
                        container("install", "installed lightgbm-4.5.0"),
                    ],
                    "containers": [container("push", "pushed " + DIGEST)],
                },
            },
        },
    }


def test_build_logs_read_the_build_pods_containers_in_order(
    cli: Any,
    kube: Kube,
    namespace: str,
    pod_executor: PodExecutor,
    cluster: Cluster,
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = "envbuild-0123456789abcdef0123"
    kube.create({**build_job(job), "metadata": {"name": job, "namespace": namespace}})
    kube.create(
        env_object.build_environment(
            name="lgbm",
            version="1",
            namespace=namespace,
            build=env_object.BuildInputs(base="mlkube-sklearn:0.1.0", pip=["lightgbm==4.5.0"]),
        )
    )
    write_status(
        kube, namespace, "lgbm-1", {"phase": "Building", "build": {"job": f"{namespace}/{job}"}}
    )
    code, out, err = cli("env", "build-logs", "lgbm:1", "--follow")
    assert code == 0, err
    assert out == (
        "==> tools <==\ntools copied\n==> install <==\ninstalled lightgbm-4.5.0\n"
        f"==> push <==\npushed {DIGEST}\n"
    )
    done = wait_for(lambda: job_condition(kube, namespace, job), what="build Job done")
    assert done["type"] == "Complete"
    code, again, _ = cli("env", "build-logs", "lgbm:1")
    assert code == 0 and again == out

    # A user who may read Environments but not the build namespace's pods is told so.
    kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "env-reader", "namespace": namespace},
            "rules": [
                {
                    "apiGroups": ["mlkube.dev"],
                    "resources": ["environments"],
                    "verbs": ["get", "list"],
                }
            ],
        }
    )
    kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "env-reader", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "env-reader",
            },
            "subjects": [{"kind": "User", "name": "alice"}],
        }
    )
    alice = str(cluster.kubeconfig_for("alice"))
    code = main(["env", "build-logs", "lgbm:1", "-n", namespace, "--kubeconfig", alice])
    err = capsys.readouterr().err
    assert code == 1
    assert f"you may not read pods in the build namespace {namespace}" in err
    kube.create(
        env_object.build_environment(
            name="lgbm", version="2", namespace=namespace, image="registry.example/x:1"
        )
    )
    code, _, err = cli("env", "build-logs", "lgbm:2")
    assert code == 1 and "has no build Job yet (phase Pending" in err


def mlflow_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "churn"
    (folder / "data").mkdir(parents=True)
    (folder / "MLmodel").write_text("flavors: {sklearn: {pickled_model: data/model.pkl}}\n")
    (folder / "data" / "model.pkl").write_bytes(b"weights")
    (folder / "requirements.txt").write_text("mlflow==2.16.0\nlightgbm==4.5.0\n")
    return folder


def test_model_register_derives_the_mlflow_models_environment(
    cli: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    folder = mlflow_folder(tmp_path)
    code, out, err = cli(
        "model",
        "register",
        "--name",
        "churn",
        "--version",
        "3",
        "--path",
        str(folder),
        "--in-place",
    )
    assert code == 0, err
    assert "environment: churn-env:3 derived from requirements.txt" in out
    model = kube.get(API_VERSION, "Model", "churn-v3", namespace)
    assert model is not None and model["spec"]["properties"] == {"environment": "churn-env:3"}
    env = kube.get(API_VERSION, "Environment", "churn-env-3", namespace)
    expected = model_env.derive(str(folder), "churn", "3", namespace)
    assert env is not None and expected is not None and env["spec"] == expected.body["spec"]
    assert env["spec"]["build"]["pip"] == ["lightgbm==4.5.0"]
    code, _, err = cli(
        "model",
        "register",
        "--name",
        "churn",
        "--version",
        "4",
        "--path",
        str(folder),
        "--in-place",
        "--environment",
        "nope:1",
    )
    assert code == 1 and "--environment nope:1: no such Environment" in err
    assert kube.get(API_VERSION, "Model", "churn-v4", namespace) is None


def test_model_package_creates_the_packaging_environment(
    cli: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    code, _, err = cli(
        "model",
        "register",
        "--name",
        "churn",
        "--version",
        "3",
        "--path",
        str(mlflow_folder(tmp_path)),
        "--in-place",
        "--no-environment",
    )
    assert code == 0, err
    kube.create(
        env_object.build_environment(
            name="lgbm", version="1", namespace=namespace, image="registry.example/x:1"
        )
    )
    code, _, err = cli("model", "package", "churn:3", "--environment", "lgbm:1")
    assert code == 1 and "is Pending, not Ready" in err  # nobody verified the Model
    write_status(kube, namespace, "churn-v3", {"phase": "Ready"}, kind="Model")
    code, _, err = cli("model", "package", "churn:3", "--environment", "lgbm:1")
    assert code == 1 and "environment lgbm:1 is not Ready" in err
    write_status(kube, namespace, "lgbm-1", ready_status())
    later(
        1.5,
        lambda: write_status(
            kube,
            namespace,
            "churn-pkg-3",
            ready_status(
                image="127.0.0.1:5000/mlkube/environments@sha256:" + "f" * 64,
                packagedModel={"name": "churn-v3", "artifactDigest": "sha256:" + "1" * 64},
            ),
        ),
    )
    code, out, err = cli("model", "package", "churn:3", "--environment", "lgbm:1", "--wait", "60")
    assert code == 0, err
    assert "churn-pkg:3 is Ready" in out and "sha256:" + "f" * 64 in out
    model = kube.get(API_VERSION, "Model", "churn-v3", namespace)
    lgbm = kube.get(API_VERSION, "Environment", "lgbm-1", namespace)
    assert model is not None and lgbm is not None
    expected = model_package.package_environment(model, IMAGE, "lgbm:1", namespace)
    stored = kube.get(API_VERSION, "Environment", "churn-pkg-3", namespace)
    assert stored is not None and stored["spec"] == expected["spec"]
    assert stored["spec"]["build"] == {"base": IMAGE} and stored["spec"]["model"] == "churn-v3"
