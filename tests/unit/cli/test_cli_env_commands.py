"""`mlkube env ...` and `mlkube model package` through `main()` on the in-memory API (the real
API server is the integration tier's): what is created, what is refused before any write, what
`list`/`show`/`archive`/`build-logs` print, and the wait loop's exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlkube.cli import env, env_logs, env_wait, model_package
from mlkube.cli.main import main
from support.fake_kube import DEFAULT_KINDS, FakeKube

API = "mlkube.dev/v1alpha1"
NS = "team"


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch) -> FakeKube:
    fake = FakeKube(kinds={*DEFAULT_KINDS, (API, "Environment")})
    for module in (env, model_package):
        monkeypatch.setattr(module, "connect", lambda args: (fake, NS))
    return fake


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def environment(name: str, version: str, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Environment",
        "metadata": {
            "name": f"{name}-{version}",
            "namespace": NS,
            "creationTimestamp": "2026-11-30T10:00:00Z",
        },
        "spec": {
            "environmentName": name,
            "version": version,
            "build": {"base": "mlkube-sklearn:0.1.0", "pip": ["lightgbm==4.5.0"]},
        },
        "status": status,
    }


def test_create_from_flags_sends_the_build_and_refuses_a_second_version_1(
    kube: FakeKube, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("lightgbm==4.5.0\n")
    code, out, err = run(
        capsys,
        "env",
        "create",
        "--name",
        "lgbm",
        "--version",
        "1",
        "--pip",
        str(req),
        "--apt",
        "libgomp1",
        "--apt",
        "libgomp1",
    )
    assert code == 0, err
    assert "environment.mlkube.dev/lgbm-1 created in namespace team (lgbm:1)" in out
    assert "mlkube env build-logs lgbm:1 --follow" in out
    spec = kube.stored(API, "Environment", "lgbm-1", NS)["spec"]
    assert spec == {
        "environmentName": "lgbm",
        "version": "1",
        "build": {"base": "mlkube-sklearn:0.1.0", "pip": ["lightgbm==4.5.0"], "apt": ["libgomp1"]},
    }
    code, _, err = run(
        capsys, "env", "create", "--name", "lgbm", "--version", "1", "--pip", str(req)
    )
    assert code == 1 and "lgbm:1 already exists in team" in err and "immutable" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--name", "x", "--version", "1"], "nothing to build"),
        (["--name", "x"], "give -f env.yaml, or --name and --version"),
        (
            ["--name", "x", "--version", "1", "--image", "i:1", "--apt", "curl"],
            "--image uses an existing image as it is; --apt needs a build",
        ),
        (["-f", "env.yaml", "--name", "x"], "-f takes the whole Environment from the file"),
        (["--name", "mlkube-x", "--version", "1", "--image", "i:1"], "reserved"),
        (["--name", "x", "--version", "1", "--pip", "/nonexistent/req.txt"], "cannot read"),
        (["--name", "x", "--version", "1", "--image", "i:1", "--wait", "0"], "must be positive"),
    ],
)
def test_bad_flags_are_refused_before_anything_is_written(
    kube: FakeKube, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, "env", "create", *argv)
    assert code == 1 and message in err
    assert kube.written() == []


def test_create_from_yaml_places_the_object_in_the_namespace(
    kube: FakeKube, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "env.yaml"
    doc.write_text(
        "apiVersion: mlkube.dev/v1alpha1\nkind: Environment\nmetadata: {name: s}\n"
        "spec: {environmentName: scorer, version: '2', image: reg/scorer:2}\n"
    )
    code, _, err = run(capsys, "env", "create", "-f", str(doc))
    assert code == 0, err
    assert kube.stored(API, "Environment", "s", NS)["spec"]["image"] == "reg/scorer:2"
    doc.write_text(doc.read_text().replace("'2'", "2"))
    code, _, err = run(capsys, "env", "create", "-f", str(doc))
    assert code == 1 and "spec.version must be a string" in err


def test_list_hides_archived_and_show_renders_status(
    kube: FakeKube, capsys: pytest.CaptureFixture[str]
) -> None:
    kube.put(
        environment(
            "lgbm",
            "1",
            phase="Ready",
            imageDigest="sha256:" + "ab" * 32,
            sizeBytes=5 * 1024 * 1024,
            packages=["lightgbm==4.5.0"],
            usedBy=[{"kind": "OnlineEndpoint", "name": "shop", "deployment": "blue"}],
        )
    )
    archived = environment("lgbm", "0")
    archived["metadata"]["labels"] = {"mlkube.dev/archived": "true"}
    kube.put(archived)
    code, out, _ = run(capsys, "env", "list")
    assert code == 0 and "lgbm   1 " in out and "lgbm   0 " not in out
    assert "sha256:abababababab" in out and "5.0 MiB" in out
    _, out, _ = run(capsys, "env", "list", "--all")
    assert "lgbm   0 " in out
    code, out, _ = run(capsys, "env", "show", "lgbm:1")
    assert code == 0
    assert "Used by:      OnlineEndpoint/shop (blue)" in out and "  lightgbm==4.5.0" in out
    code, _, err = run(capsys, "env", "show", "lgbm:9")
    assert code == 1 and "Environment lgbm:9 not found in namespace team" in err


def test_archive_labels_once(kube: FakeKube, capsys: pytest.CaptureFixture[str]) -> None:
    kube.put(environment("lgbm", "1"))
    code, out, _ = run(capsys, "env", "archive", "lgbm:1")
    assert code == 0 and "archived" in out
    labels = kube.stored(API, "Environment", "lgbm-1", NS)["metadata"]["labels"]
    assert labels == {"mlkube.dev/archived": "true"}
    code, _, err = run(capsys, "env", "archive", "lgbm:1")
    assert code == 0 and "already archived" in err


def test_curated_list_needs_no_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "env", "list", "--curated")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[1:]] == [
        "mlkube-mlflow",
        "mlkube-onnx",
        "mlkube-sklearn",
    ]


def pod(phase: str, **states: str) -> dict[str, Any]:
    names = ["tools", "install"]
    return {
        "metadata": {"name": "envbuild-abc-x", "namespace": "mlkube-system"},
        "spec": {"initContainers": [{"name": n} for n in names], "containers": [{"name": "push"}]},
        "status": {
            "phase": phase,
            "initContainerStatuses": [
                {"name": n, "state": {states[n]: {}}} for n in names if n in states
            ],
            "containerStatuses": [{"name": "push", "state": {states["push"]: {}}}]
            if "push" in states
            else [],
        },
    }


def test_build_logs_print_started_containers_in_order(
    kube: FakeKube, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kube.put(
        environment("lgbm", "1", phase="Building", build={"job": "mlkube-system/envbuild-abc"})
    )
    started = pod("Running", tools="terminated", install="running")
    started["metadata"]["labels"] = {"batch.kubernetes.io/job-name": "envbuild-abc"}
    kube.put({"apiVersion": "v1", "kind": "Pod", **started})
    reads: list[str] = []

    def logs(_kube: object, namespace: str, name: str, container: str) -> str:
        reads.append(f"{namespace}/{name}/{container}")
        return f"{container} line\n"

    monkeypatch.setattr(env, "pod_logs", logs)
    code, out, _ = run(capsys, "env", "build-logs", "lgbm:1")
    assert code == 0
    assert out == "==> tools <==\ntools line\n==> install <==\ninstall line\n"
    assert reads == ["mlkube-system/envbuild-abc-x/tools", "mlkube-system/envbuild-abc-x/install"]
    kube.put(environment("lgbm", "2", phase="Pending"))
    code, _, err = run(capsys, "env", "build-logs", "lgbm:2")
    assert code == 1 and "has no build Job yet (phase Pending" in err


def test_follow_prints_only_what_is_new_until_the_pod_ends() -> None:
    pods = [
        pod("Running", tools="running"),
        pod("Running", tools="terminated", install="running"),
        pod("Succeeded", tools="terminated", install="terminated", push="terminated"),
    ]
    logs = {
        "tools": ["copied\n", "copied\n", "copied\n"],
        "install": ["", "pip 1\n", "pip 1\npip 2\n"],
        "push": ["", "", "pushed sha256:x\n"],
    }
    tick, out = iter(range(3)), []
    current = [0]

    def fetch() -> dict[str, Any]:
        current[0] = next(tick)
        return pods[current[0]]

    last = env_logs.follow(
        fetch, lambda _p, c: logs[c][current[0]], out.append, sleep=lambda _s: None
    )
    assert last is pods[2]
    assert "".join(out) == (
        "==> tools <==\ncopied\n==> install <==\npip 1\npip 2\n==> push <==\npushed sha256:x\n"
    )


def test_wait_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    building = environment("lgbm", "1", phase="Building", build={"job": "ns/envbuild-a"})
    ready = environment(
        "lgbm",
        "1",
        phase="Ready",
        image="reg/env@sha256:1",
        packages=["a==1"],
        build={"job": "ns/envbuild-a", "reused": True},
    )
    seq = iter([environment("lgbm", "1"), building, building, ready])
    lines: list[str] = []
    code, _ = env_wait.wait(lambda: next(seq), None, lines.append, sleep=lambda _s: None)
    assert code == 0
    assert lines[:2] == ["  Pending", "  Building (build Job ns/envbuild-a)"]
    assert "  image:    reg/env@sha256:1" in lines and any("reused" in line for line in lines)
    failed = environment(
        "lgbm",
        "1",
        phase="Failed",
        conditions=[
            {"type": "Ready", "status": "False", "reason": "BuildFailed", "message": "no lightgbm"}
        ],
    )
    code, _ = env_wait.wait(lambda: failed, None, lines.append)
    err = capsys.readouterr().err
    assert code == 1 and "lgbm:1 Failed: BuildFailed: no lightgbm" in err
    assert "mlkube env build-logs lgbm:1" in err
    clock = iter([0.0, 5.0, 11.0])
    code, _ = env_wait.wait(
        lambda: building, 10, lines.append, clock=lambda: next(clock), sleep=lambda _s: None
    )
    assert code == 124 and "still Building after 10s" in capsys.readouterr().err


def model(phase: str = "Ready") -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Model",
        "metadata": {"name": "churn-v3", "namespace": NS},
        "spec": {
            "modelName": "churn",
            "version": "3",
            "framework": "sklearn",
            "artifact": {"uri": "s3://b/churn/3/", "digest": "sha256:" + "1" * 64},
        },
        "status": {"phase": phase},
    }


def test_package_builds_on_the_environments_digest_with_the_model(
    kube: FakeKube, capsys: pytest.CaptureFixture[str]
) -> None:
    kube.put(model())
    kube.put(environment("lgbm", "1", phase="Ready", image="reg/env@sha256:" + "e" * 64))
    code, out, err = run(capsys, "model", "package", "churn:3", "--environment", "lgbm:1")
    assert code == 0, err
    assert "churn-pkg:3" in out
    spec = kube.stored(API, "Environment", "churn-pkg-3", NS)["spec"]
    assert spec == {
        "environmentName": "churn-pkg",
        "version": "3",
        "description": "model churn:3 packaged on lgbm:1",
        "build": {"base": "reg/env@sha256:" + "e" * 64},
        "model": "churn-v3",
    }
    code, out, _ = run(capsys, "model", "package", "churn:3", "--environment", "lgbm:1")
    assert code == 0 and "already packages churn-v3" in out
    kube.mutate(
        (API, "Environment", NS, "lgbm-1"),
        lambda o: o["metadata"].setdefault("labels", {}).update({"mlkube.dev/archived": "true"}),
    )
    code, _, err = run(capsys, "model", "package", "churn:3", "--environment", "lgbm:1")
    assert code == 1 and "environment lgbm:1 is archived" in err
    code, _, err = run(capsys, "model", "package", "churn:3", "--environment", "mlkube-onnx:0.1.0")
    assert code == 1 and "already exists in team with other inputs" in err


def test_package_refuses_unverified_models_and_unready_environments(
    kube: FakeKube, capsys: pytest.CaptureFixture[str]
) -> None:
    kube.put(model(phase="Pending"))
    code, _, err = run(
        capsys, "model", "package", "churn:3", "--environment", "mlkube-sklearn:0.1.0"
    )
    assert code == 1 and "is Pending, not Ready" in err
    kube.put(model())
    kube.put(environment("lgbm", "1", phase="Building"))
    code, _, err = run(capsys, "model", "package", "churn:3", "--environment", "lgbm:1")
    assert code == 1 and "environment lgbm:1 is not Ready (phase Building)" in err
    code, _, err = run(
        capsys, "model", "package", "churn-v3", "--environment", "mlkube-sklearn:0.1.0"
    )
    assert code == 0, err
    built = kube.stored(API, "Environment", "churn-pkg-3", NS)["spec"]["build"]
    assert built == {"base": "mlkube-sklearn:0.1.0"}


def test_base_may_name_one_of_your_environments(
    kube: FakeKube, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("shap\n")
    kube.put(environment("lgbm", "1", phase="Ready", image="reg/env@sha256:" + "e" * 64))
    kube.put(environment("lgbm", "2", phase="Building"))
    argv = ["env", "create", "--pip", str(req), "--name", "explain"]
    code, out, err = run(capsys, *argv, "--version", "1", "--base", "lgbm:1")
    assert code == 0, err
    assert f"base lgbm:1: reg/env@sha256:{'e' * 64}" in out
    spec = kube.stored(API, "Environment", "explain-1", NS)["spec"]
    assert spec["build"]["base"] == "reg/env@sha256:" + "e" * 64
    assert spec["description"] == "built on environment lgbm:1"
    code, _, err = run(capsys, *argv, "--version", "2", "--base", "lgbm:2")
    assert code == 1 and "--base lgbm:2 is an Environment that is not Ready" in err
    code, _, err = run(capsys, *argv, "--version", "3", "--base", "python:3.11")
    assert code == 0, err  # no such Environment: an image
    assert (
        kube.stored(API, "Environment", "explain-3", NS)["spec"]["build"]["base"] == "python:3.11"
    )


def test_follow_says_once_why_a_container_waits() -> None:
    stuck = pod("Pending")
    stuck["status"]["initContainerStatuses"] = [
        {
            "name": "tools",
            "state": {
                "waiting": {"reason": "ImagePullBackOff", "message": "pull reg/tools: not found"}
            },
        },
        {"name": "install", "state": {"waiting": {"reason": "PodInitializing"}}},
    ]
    seq = iter([stuck, stuck, pod("Failed")])
    notes: list[str] = []
    env_logs.follow(
        lambda: next(seq),
        lambda _p, _c: "",
        lambda _t: None,
        note=notes.append,
        sleep=lambda _s: None,
    )
    assert notes == ["tools is waiting: ImagePullBackOff: pull reg/tools: not found"]
