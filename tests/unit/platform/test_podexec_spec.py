"""The dev pod executor's pure rules: mount paths mapped to local directories wherever they
appear, env resolved as a kubelet does, only python commands, and kubelet-like status."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from mlkube.builders.pipeline_contract import WRAPPER as STEP_WRAPPER
from mlkube.builders.pipeline_contract import main_command
from mlkube.devcluster import podexec_status as st
from mlkube.devcluster.podexec_command import build_argv, expand, shims
from mlkube.devcluster.podexec_paths import Mount, mount_parents, rewrite
from mlkube.devcluster.podexec_spec import (
    NotYet,
    Refused,
    container_run,
    decode_data,
    resolve_env,
    volume_dirs,
    volume_files,
)

POD: dict[str, Any] = {
    "metadata": {
        "name": "job-0-abc",
        "namespace": "ns",
        "uid": "u1",
        "annotations": {"batch.kubernetes.io/job-completion-index": "3"},
        "labels": {"app": "x"},
    },
    "spec": {"nodeName": "kwok-0", "containers": [{"name": "main"}]},
}
DATA: dict[tuple[str, str], dict[str, str]] = {
    ("Secret", "store"): {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "key"},
    ("ConfigMap", "cfg"): {"level": "debug", "model.txt": "m"},
}


def lookup(kind: str, name: str) -> Mapping[str, str] | None:
    return DATA.get((kind, name))


def test_rewrite_maps_whole_paths_only_longest_first() -> None:
    mounts = [Mount("/mnt", Path("/w/a")), Mount("/mnt/models", Path("/w/m")),
              Mount("/tmp", Path("/tmp/pods/x/tmp"))]  # fmt: skip
    assert rewrite("/mnt/models", mounts) == "/w/m"
    assert rewrite("/mnt/models/model.onnx", mounts) == "/w/m/model.onnx"
    assert rewrite("--model=/mnt/models", mounts) == "--model=/w/m"
    assert rewrite("/mnt/modelsx", mounts) == "/w/a/modelsx"  # not the /mnt/models mount
    assert rewrite("/mntx /opt/mnt", mounts) == "/mntx /opt/mnt"
    assert rewrite("a:/tmp,b", mounts) == "a:/tmp/pods/x/tmp,b"
    assert rewrite("open('/tmp/f')", mounts) == "open('/tmp/pods/x/tmp/f')"
    # One pass: a local dir that starts with a mount path is not mapped again.
    assert rewrite("/tmp", mounts) == "/tmp/pods/x/tmp"
    assert rewrite("s3://bucket/mnt/models", mounts) == "s3://bucket/mnt/models"


def test_env_is_resolved_in_kubelet_order() -> None:
    container = {
        "name": "main",
        "envFrom": [{"secretRef": {"name": "store"}}, {"configMapRef": {"name": "cfg"},
                                                        "prefix": "CFG_"}],
        "env": [
            {"name": "AWS_ACCESS_KEY_ID", "value": "override"},
            {"name": "INDEX", "valueFrom": {"fieldRef": {
                "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "store",
                                                           "key": "AWS_SECRET_ACCESS_KEY"}}},
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "level"}}},
            {"name": "GONE", "valueFrom": {"secretKeyRef": {"name": "x", "key": "k",
                                                            "optional": True}}},
            {"name": "REF", "value": "$(POD)-$(INDEX)-$(NOPE)-$$(POD)"},
        ],
    }  # fmt: skip
    env = resolve_env(container, POD, lookup)
    assert env["AWS_ACCESS_KEY_ID"] == "override"
    assert env["AWS_SECRET_ACCESS_KEY"] == env["KEY"] == "key"
    assert env["CFG_level"] == env["LEVEL"] == "debug"
    assert (env["INDEX"], env["POD"], env["APP"]) == ("3", "job-0-abc", "x")
    assert "GONE" not in env
    assert env["REF"] == "job-0-abc-3-$(NOPE)-$(POD)"


def test_missing_secret_waits_and_unknown_field_is_refused() -> None:
    with pytest.raises(NotYet, match="secret 'nope'"):
        resolve_env({"name": "c", "envFrom": [{"secretRef": {"name": "nope"}}]}, POD, lookup)
    with pytest.raises(NotYet, match="key 'k'"):
        resolve_env({"name": "c", "env": [{"name": "A", "valueFrom": {
            "secretKeyRef": {"name": "store", "key": "k"}}}]}, POD, lookup)  # fmt: skip
    with pytest.raises(Refused, match=r"status\.phase"):
        resolve_env({"name": "c", "env": [{"name": "A", "valueFrom": {
            "fieldRef": {"fieldPath": "status.phase"}}}]}, POD, lookup)  # fmt: skip


def test_only_python_runs_under_this_interpreter() -> None:
    c = {"name": "scorer", "command": ["python", "-m", "mlkube_serving"],
         "args": ["batch", "score", "--index", "$(I)"]}  # fmt: skip
    assert build_argv(c, {"I": "2"}, "/venv/bin/python") == [
        "/venv/bin/python", "-m", "mlkube_serving", "batch", "score", "--index", "2"]  # fmt: skip
    for bad in ({"name": "c", "command": ["/bin/sh", "-c", "x"]}, {"name": "c", "args": ["x"]}):
        with pytest.raises(Refused, match="only `python` commands"):
            build_argv(bad, {}, "/venv/bin/python")


def test_volumes_and_a_whole_container_run(tmp_path: Path) -> None:
    pod = {**POD, "spec": {**POD["spec"], "volumes": [
        {"name": "model", "emptyDir": {}},
        {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "level", "path": "l/v"}]}},
        {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}},
                                                    {"secret": {"name": "store"}}]}},
    ]}}  # fmt: skip
    dirs = volume_dirs(pod, tmp_path)
    assert dirs["model"] == tmp_path / "volumes" / "model"
    assert volume_files(pod["spec"]["volumes"][1], lookup) == {"l/v": b"debug"}
    # A projected volume gets its Secret, never a service-account token.
    assert set(volume_files(pod["spec"]["volumes"][2], lookup) or {}) == {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}  # fmt: skip
    assert volume_files({"name": "s", "secret": {"secretName": "nope"}}, lookup) is None
    with pytest.raises(Refused, match="hostPath"):
        volume_dirs({"spec": {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}}, tmp_path)

    container = {
        "name": "scorer",
        "command": ["python", "-m", "mlkube_serving"],
        "args": ["batch", "score", "--model", "/mnt/models", "--termination-log",
                 "/dev/termination-log"],
        "env": [{"name": "HOME", "value": "/tmp"}],
        "volumeMounts": [{"name": "model", "mountPath": "/mnt/models"},
                         {"name": "model", "mountPath": "/tmp", "subPath": "scratch"}],
        "workingDir": "/mnt/models",
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }  # fmt: skip
    run = container_run(container, pod, tmp_path, dirs, lookup, "/py", {"PATH": "/bin"})
    model, scratch = str(dirs["model"]), str(dirs["model"] / "scratch")
    assert run.argv == ["/py", "-m", "mlkube_serving", "batch", "score", "--model", model,
                        "--termination-log", str(run.termination)]  # fmt: skip
    assert run.env["HOME"] == run.env["TMPDIR"] == scratch
    assert run.env["MLKUBE_TERMINATION_LOG"] == str(tmp_path / "scorer" / "termination-log")
    # `python` on PATH is the executor's interpreter (shims first), then the inherited PATH.
    assert run.env["PATH"] == f"{tmp_path}/.bin:/bin" and run.env["HOSTNAME"] == "job-0-abc"
    assert run.cwd == Path(model) and run.fallback_to_logs
    with pytest.raises(Refused, match="escapes"):
        bad = {**container, "volumeMounts": [{"name": "model", "mountPath": "/x",
                                              "subPath": "../.."}]}  # fmt: skip
        container_run(bad, pod, tmp_path, dirs, lookup, "/py", {})


def test_secret_data_is_decoded() -> None:
    secret = {"kind": "Secret", "data": {"a": base64.b64encode(b"v").decode()}}
    assert decode_data(secret) == {"a": "v"}
    assert decode_data({"kind": "ConfigMap", "data": {"a": "v"}}) == {"a": "v"}
    assert expand("$$x", {}) == "$x"


def test_termination_message_file_first_then_log_tail() -> None:
    assert st.termination_message("x" * 5000, b"", 1, True) == "x" * 4096
    log = b"\n".join(f"line {i}".encode() for i in range(200))
    tail = st.termination_message("", log, 2, True)
    assert tail.splitlines()[0] == "line 120" and tail.endswith("line 199")
    assert st.termination_message("", log, 2, False) == ""
    assert st.termination_message("", log, 0, True) == ""  # succeeded: no fallback
    assert st.exit_code(-9) == 137 and st.exit_code(-15) == 143 and st.exit_code(3) == 3


def test_pod_status_like_a_kubelet() -> None:
    pod = {**POD, "status": {"conditions": [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "t0"},
        {"type": "Initialized", "status": "True", "lastTransitionTime": "t1"}]}}  # fmt: skip
    main = POD["spec"]["containers"][0]
    running = st.pod_status(pod, "Running", [], [st.container_status(main, st.running("t2"))],
                            "t2", "t2")["status"]  # fmt: skip
    cond = {c["type"]: c for c in running["conditions"]}
    assert cond["PodScheduled"]["lastTransitionTime"] == "t0"  # kept as it was
    assert cond["Initialized"]["lastTransitionTime"] == "t1"  # unchanged: same time
    assert cond["Ready"]["status"] == "True" and running["containerStatuses"][0]["ready"]
    done = st.terminated(137, "t2", "t3", "killed")
    failed = st.pod_status(pod, "Failed", [], [st.container_status(main, done, "local://9")],
                           "t3", "t2", message="gone")["status"]  # fmt: skip
    state = failed["containerStatuses"][0]["state"]["terminated"]
    assert state == {"exitCode": 137, "reason": "Error", "signal": 9, "startedAt": "t2",
                     "finishedAt": "t3", "message": "killed"}  # fmt: skip
    assert {c["type"]: c.get("reason") for c in failed["conditions"]}["Ready"] == "PodFailed"
    assert failed["message"] == "gone" and failed["phase"] == "Failed"
    assert st.terminated(0, "a", "b")["terminated"]["reason"] == "Completed"


def test_binary_secret_files_keep_their_bytes() -> None:
    raw = bytes(range(256))
    data = decode_data({"kind": "Secret", "data": {"k": base64.b64encode(raw).decode()}})
    files = volume_files({"name": "s", "secret": {"secretName": "b"}}, lambda _k, _n: data)
    assert files == {"k": raw}


def test_the_interpreter_is_never_taken_for_a_mount(tmp_path: Path) -> None:
    # CI clones the repository under /tmp: its interpreter must not become <scratch>/ci/...
    pod = {**POD, "spec": {**POD["spec"], "volumes": [{"name": "scratch", "emptyDir": {}}]}}
    dirs = volume_dirs(pod, tmp_path)
    container = {
        "name": "scorer",
        "command": ["python", "-m", "mlkube_serving"],
        "args": ["--scratch", "/tmp/work"],
        "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}],
    }
    python = "/tmp/ci-clone/.venv/bin/python"
    run = container_run(container, pod, tmp_path, dirs, lookup, python, {})
    assert run.argv == [python, "-m", "mlkube_serving", "--scratch", f"{dirs['scratch']}/work"]


# The pipeline step wrapper as a builder puts it in a pod spec: every `$` doubled, because the
# kubelet expands `$$` to `$` (and `$(VAR)`) in command and args, the script included.
WRAPPER = 'echo $$ > /mlkube/run/main.pid; "$@"; rc=$?; echo $rc >/mlkube/run/exit-code; exit $rc'
WRAPPED = ["/bin/sh", "-c", WRAPPER.replace("$", "$$"), "mlkube-step"]


def test_a_shell_wrapper_around_python_runs_under_the_real_shell() -> None:
    c = {"name": "main", "command": [*WRAPPED, "python", "train.py"], "args": ["--n", "$(N)"]}
    assert build_argv(c, {"N": "5"}, "/venv/bin/python") == [
        "/bin/sh", "-c", WRAPPER, "mlkube-step", "python", "train.py", "--n", "5"]  # fmt: skip
    # The wrapped command may come in args (command + args is one argv), and `sh`/`python3`.
    split = {"name": "main", "command": ["sh", *WRAPPED[1:3]], "args": ["s", "python3", "-V"]}
    assert build_argv(split, {}, "/py") == ["/bin/sh", "-c", WRAPPER, "s", "python3", "-V"]
    # A `$$` left unescaped in a spec reaches the shell as `$`, as on a real node.
    raw = {"name": "main", "command": ["/bin/sh", "-c", "echo $$", "n", "python"]}
    assert build_argv(raw, {}, "/py")[2] == "echo $"


@pytest.mark.parametrize(
    "command",
    [
        [*WRAPPED, "bash", "-c", "x"],  # the wrapped command is not python
        [*WRAPPED],  # nothing wrapped
        ["/bin/sh", "-c", "python x.py"],  # python inside the script only: not checkable
        ["/bin/bash", "-c", WRAPPER, "n", "python"],  # another shell
        ["/bin/sh", "-e", WRAPPER, "n", "python"],  # not -c
        ["/usr/bin/python", "x.py"],  # a path into the image
    ],
)
def test_anything_else_is_refused_with_the_same_message(command: list[str]) -> None:
    with pytest.raises(Refused, match=r"runs only `python` commands .* not '") as err:
        build_argv({"name": "main", "command": command}, {}, "/py")
    assert " ".join(command) in str(err.value)


def test_paths_in_a_shell_script_are_rewritten(tmp_path: Path) -> None:
    mounts = [Mount("/mlkube/run", Path("/w/run")), Mount("/mlkube/outputs", Path("/w/out"))]
    script = "echo $$ >/mlkube/run/pid; cd /mlkube/outputs&&ls;(cat /mlkube/run)|wc>/x/mlkube/run"
    assert rewrite(script, mounts) == (
        "echo $$ >/w/run/pid; cd /w/out&&ls;(cat /w/run)|wc>/x/mlkube/run")  # fmt: skip
    pod = {**POD, "spec": {**POD["spec"], "volumes": [{"name": "run", "emptyDir": {}}]}}
    dirs = volume_dirs(pod, tmp_path)
    main = {"name": "main", "command": [*WRAPPED, "python", "-c", "open('/mlkube/run/x')"],
            "env": [{"name": "PATH", "value": "/usr/local/bin:/usr/bin:/bin"}],
            "volumeMounts": [{"name": "run", "mountPath": "/mlkube/run"}]}  # fmt: skip
    run = container_run(main, pod, tmp_path, dirs, lookup, "/venv/bin/python", {"PATH": "/b"})
    local = dirs["run"]
    assert run.argv == ["/bin/sh", "-c", WRAPPER.replace("/mlkube/run", str(local)),
                        "mlkube-step", "python", "-c", f"open('{local}/x')"]  # fmt: skip
    # The container's own PATH is kept, behind the shims that make `python` this interpreter.
    assert run.env["PATH"] == f"{tmp_path}/.bin:/usr/local/bin:/usr/bin:/bin"
    assert shims("/venv/bin/python") == {
        "python": '#!/bin/sh\nexec /venv/bin/python "$@"\n',
        "python3": '#!/bin/sh\nexec /venv/bin/python "$@"\n',
    }
    assert "'/my venv/python'" in shims("/my venv/python")["python"]


def test_step_pod_conditions_name_the_containers_like_a_kubelet() -> None:
    spec = {"initContainers": [{"name": "inputs"}],
            "containers": [{"name": "main"}, {"name": "outputs"}]}  # fmt: skip
    pod = {**POD, "spec": spec}
    init, main, outputs = ({"name": n} for n in ("inputs", "main", "outputs"))
    wait = st.waiting("PodInitializing")
    pending = st.pod_status(pod, "Pending", [st.container_status(init, st.running("t1"))],
                            [st.container_status(main, wait), st.container_status(outputs, wait)],
                            "t1", "t1")["status"]  # fmt: skip
    cond = {c["type"]: c for c in pending["conditions"]}
    assert cond["Initialized"] == {"type": "Initialized", "status": "False", "lastTransitionTime":
                                   "t1", "reason": "ContainersNotInitialized", "message":
                                   "containers with incomplete status: [inputs]"}  # fmt: skip
    assert cond["Ready"]["message"] == "containers with unready status: [main outputs]"
    # main done, outputs still running: the pod runs on, not ready, main named.
    inits = [st.container_status(init, st.terminated(0, "t1", "t2"))]
    running = st.pod_status(pod, "Running", inits, [
        st.container_status(main, st.terminated(1, "t2", "t3")),
        st.container_status(outputs, st.running("t2"))], "t3", "t1")["status"]  # fmt: skip
    cond = {c["type"]: c for c in running["conditions"]}
    assert cond["Initialized"]["status"] == "True" and "reason" not in cond["Initialized"]
    assert (cond["ContainersReady"]["status"], cond["ContainersReady"]["reason"]) == (
        "False", "ContainersNotReady")  # fmt: skip
    assert cond["ContainersReady"]["message"] == "containers with unready status: [main]"
    assert running["containerStatuses"][1]["ready"] and not running["containerStatuses"][0]["ready"]
    # Only `main` has no status yet (a kubelet says "unknown").
    partial = st.pod_status(pod, "Running", inits, [st.container_status(outputs, st.running("t2"))],
                            "t3", "t1")["status"]  # fmt: skip
    assert {c["type"]: c for c in partial["conditions"]}["Ready"]["message"] == (
        "containers with unknown status: [main]")  # fmt: skip


def test_parents_of_mount_points_are_made_up_holding_links_to_the_mounts(tmp_path: Path) -> None:
    vols = {n: tmp_path / "volumes" / n for n in ("in", "out", "run", "m", "d")}
    mounts = [Mount("/mlkube/inputs", vols["in"]), Mount("/mlkube/outputs", vols["out"]),
              Mount("/mlkube/run", vols["run"]), Mount("/mnt/models", vols["m"]),
              Mount("/data", vols["d"]), Mount("/data/sub/x", vols["m"]),
              Mount("/dev/termination-log", tmp_path / "t")]  # fmt: skip
    fs = tmp_path / "fs"
    parents, links = mount_parents(mounts, fs)
    # /mnt and /dev are every machine's (and the image's, with other content), /data/sub is
    # inside a mount: only /mlkube is made up, holding the three mount points.
    assert parents == [Mount("/mlkube", fs / "mlkube")]
    assert links == {fs / "mlkube" / "inputs": vols["in"], fs / "mlkube" / "outputs": vols["out"],
                     fs / "mlkube" / "run": vols["run"]}  # fmt: skip
    # Deeper: every made-up level holds the next one.
    deep, _ = mount_parents([Mount("/a/b/c", vols["d"]), Mount("/opt/x/y", vols["d"])], fs)
    assert deep == [Mount("/a", fs / "a"), Mount("/a/b", fs / "a" / "b")]


def test_the_contract_wrapper_and_step_root_are_mapped(tmp_path: Path) -> None:
    names = ("mlkube-inputs", "mlkube-outputs", "mlkube-run")
    pod = {**POD, "spec": {**POD["spec"], "volumes": [{"name": n, "emptyDir": {}} for n in names]}}
    dirs = volume_dirs(pod, tmp_path)
    command = main_command(["python", "train.py"])
    command[2] = command[2].replace("$", "$$")  # as a pod spec must carry it
    main = {"name": "main", "command": command,
            "env": [{"name": "MLKUBE_STEP_ROOT", "value": "/mlkube"},
                    {"name": "MLKUBE_OUTPUTS", "value": "/mlkube/outputs"}],
            "volumeMounts": [{"name": n, "mountPath": "/mlkube/" + n.split("-")[1]}
                             for n in names]}  # fmt: skip
    run = container_run(main, pod, tmp_path, dirs, lookup, "/py", {})
    fs = tmp_path / ".fs" / "main" / "mlkube"
    assert run.env["MLKUBE_STEP_ROOT"] == str(fs)
    assert run.env["MLKUBE_OUTPUTS"] == str(dirs["mlkube-outputs"])
    assert run.links[fs / "run"] == dirs["mlkube-run"]
    # The script's own default root is mapped too, and its `$$` reached the shell whole.
    assert run.argv[2] == STEP_WRAPPER.replace("${MLKUBE_STEP_ROOT:-/mlkube}",
                                               "${MLKUBE_STEP_ROOT:-" + str(fs) + "}")  # fmt: skip
    assert 'echo "$$" > "$run/main.pid"' in run.argv[2]
    assert run.argv[3:] == ["mlkube-step", "python", "train.py"]
