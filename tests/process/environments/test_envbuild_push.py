"""The build pod's push step against a real registry: an image appended to a base made here,
read back (manifest, config, layers), reproducible digests, tag reuse, cross-repository
mounts and copies between registries, and the tools copied alone into a directory."""

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from mlkube.envbuild import contract
from mlkube.envbuild.copy_tools import copy_tools
from mlkube.envbuild.layer import write_layer
from mlkube.envbuild.reuse import find_build
from mlkube.oci import Client, load_docker_config, parse
from support.oci_images import layer_content, layer_files, push_image
from support.registry import TEST_PASSWORD as PASSWORD
from support.registry import TEST_USER as USER
from support.registry import Registry

KEY = "sha256:" + "ab" * 32
PACKAGES = ["lightgbm==4.5.0", "numpy==2.1.3"]


def make_layer(root: Path, *, reverse: bool = False) -> Path:
    files = {
        "opt/app/features.py": ("X = 1\n", 0o644),
        "usr/local/bin/tool": ("#!/bin/sh\necho tool\n", 0o755),
        "usr/local/lib/python3.11/site-packages/lgbm/__init__.py": ("", 0o644),
    }
    items = sorted(files.items(), reverse=reverse)
    for path, (content, mode) in items:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        target.chmod(mode)
        os.utime(target, (1_700_000_000 + len(path), 1_700_000_000 + (9 if reverse else 1)))
    return root


def make_work(work: Path, python_path: list[str] | None = None) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    report = {
        "packages": PACKAGES,
        "python": "3.11.2",
        "pythonPath": python_path or [],
        "serving": {"compatible": True, "version": "0.1.0", "message": ""},
    }
    (work / contract.REPORT_FILE).write_text(json.dumps(report))
    return work


def run_push(
    reg: Registry,
    base: str,
    layer: Path,
    work: Path,
    *,
    repo: str = "mlkube/environments",
    python: list[str] | None = None,
    docker_config: Path | None = None,
    extra_insecure: tuple[str, ...] = (),
) -> tuple[dict[str, object], list[str] | None, str]:
    log = work / "termination-log"
    cmd = [
        *(python or [sys.executable, "-m", "mlkube.envbuild.push"]),
        "--layer",
        str(layer),
        "--work",
        str(work),
        "--base",
        base,
        "--repository",
        f"{reg.host}/{repo}",
        "--build-key",
        KEY,
        "--environment",
        "lgbm:1",
        "--termination-log",
        str(log),
        "--insecure",
        reg.host,
    ]
    for host in extra_insecure:
        cmd += ["--insecure", host]
    if docker_config:
        cmd += ["--docker-config", str(docker_config)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    message = log.read_text()
    assert len(message.encode()) <= contract.TERMINATION_LIMIT
    return json.loads(message), contract.find_packages(proc.stdout), proc.stdout


def test_push_appends_a_layer_that_reads_back(registry: Registry, tmp_path: Path) -> None:
    client = Client(insecure=[registry.host])
    base = push_image(
        client,
        f"{registry.host}/base/python:3.11",
        [{"etc/os-release": b"debian\n"}, {"usr/bin/python3": b"ELF"}],
    )
    result, packages, _ = run_push(
        registry, str(base), make_layer(tmp_path / "layer"), make_work(tmp_path / "work")
    )
    assert packages == PACKAGES
    tag = contract.build_tag(KEY)
    assert result["tag"] == tag == "build-" + "ab" * 16
    target = parse(f"{registry.host}/mlkube/environments:{tag}")
    assert client.resolve(target).digest == result["digest"]
    assert result["image"] == f"{registry.host}/mlkube/environments@{result['digest']}"
    assert result["serving"] == {"compatible": True, "version": "0.1.0", "message": ""}

    image = client.get_image(target)
    base_image = client.get_image(base)
    assert image.layers[:2] == base_image.layers and len(image.layers) == 3
    assert all(client.blob_exists(target, layer.digest) for layer in image.layers)
    assert result["sizeBytes"] == sum(layer.size for layer in image.layers)
    config = json.loads(client.get_blob(target, image.config.digest))
    base_config = json.loads(client.get_blob(base, base_image.config.digest))
    assert config["rootfs"]["diff_ids"][:2] == base_config["rootfs"]["diff_ids"]
    assert len(config["history"]) == 3 and "lgbm:1" in config["history"][2]["created_by"]
    assert "MLKUBE_ENVIRONMENT=lgbm:1" in config["config"]["Env"]
    assert not any(e.startswith("PYTHONPATH=") for e in config["config"]["Env"])
    labels = config["config"]["Labels"]
    assert labels["base"] == "1" and labels[contract.LABEL_BUILD_KEY] == KEY
    assert contract.decode_packages(labels[contract.LABEL_PACKAGES]) == PACKAGES

    new = client.get_blob(target, image.layers[2].digest)
    members = layer_files(new)
    assert list(members) == sorted(members, key=str.encode)
    assert {m.uid for m in members.values()} == {0} and {m.mtime for m in members.values()} == {0}
    assert members["usr/local/bin/tool"].mode == 0o755
    assert members["opt/app/features.py"].mode == 0o644
    assert layer_content(new, "opt/app/features.py") == b"X = 1\n"


def test_find_build_reads_a_pushed_build_back(registry: Registry, tmp_path: Path) -> None:
    client = Client(insecure=[registry.host])
    repo = f"{registry.host}/reuse/environments"
    assert find_build(client, repo, KEY) is None
    base = push_image(client, f"{registry.host}/base/reuse:1", [{"etc/base": b"r"}])
    work = make_work(tmp_path / "work")
    (work / contract.MODEL_REPORT_FILE).write_text(
        json.dumps({"name": "iris-3", "digest": "sha256:" + "1" * 64})
    )
    result, _, _ = run_push(
        registry, str(base), make_layer(tmp_path / "layer"), work, repo="reuse/environments"
    )
    found = find_build(client, repo, KEY)
    assert found is not None
    assert (found.digest, found.image) == (result["digest"], result["image"])
    assert found.packages == PACKAGES and found.python == "3.11.2"
    assert found.serving == {"compatible": True, "version": "0.1.0", "message": ""}
    assert found.size_bytes == result["sizeBytes"]
    assert found.packaged_model == {"name": "iris-3", "artifactDigest": "sha256:" + "1" * 64}
    assert result["packagedModel"] == found.packaged_model
    other_key = "sha256:" + "ab" * 16 + "ff" * 16  # same 32-hex tag, another key
    assert find_build(client, repo, other_key) is None


def test_same_inputs_give_the_same_digests(registry: Registry, tmp_path: Path) -> None:
    client = Client(insecure=[registry.host])
    base = push_image(client, f"{registry.host}/base/repro:1", [{"etc/base": b"b"}])
    one = write_layer(str(make_layer(tmp_path / "a")), str(tmp_path / "a.tgz"))
    two = write_layer(str(make_layer(tmp_path / "b", reverse=True)), str(tmp_path / "b.tgz"))
    assert (one.digest, one.diff_id) == (two.digest, two.diff_id)
    first, _, _ = run_push(registry, str(base), tmp_path / "a", make_work(tmp_path / "w1"))
    second, _, _ = run_push(registry, str(base), tmp_path / "b", make_work(tmp_path / "w2"))
    assert first["digest"] == second["digest"] and first["layerDigest"] == one.digest
    (tmp_path / "b" / "opt/app/features.py").write_text("X = 2\n")
    third, _, _ = run_push(registry, str(base), tmp_path / "b", make_work(tmp_path / "w3"))
    assert third["digest"] != first["digest"]
    # the tag now names the latest push of that key (a rebuild replaces, never duplicates)
    tag = parse(f"{registry.host}/mlkube/environments:{contract.build_tag(KEY)}")
    assert client.resolve(tag).digest == third["digest"]


def test_python_path_and_copy_from_another_registry_with_auth(
    registry: Registry, auth_registry: Registry, tmp_path: Path
) -> None:
    base = push_image(
        Client(insecure=[registry.host]),
        f"{registry.host}/base/other:1",
        [{"etc/base": b"other"}],
        env=["PATH=/bin", "PYTHONPATH=/base"],
    )
    secret = tmp_path / "secret"
    secret.mkdir()
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (secret / ".dockerconfigjson").write_text(
        json.dumps({"auths": {auth_registry.host: {"auth": auth}}})
    )
    result, _, _ = run_push(
        auth_registry,
        str(base),
        make_layer(tmp_path / "layer"),
        make_work(tmp_path / "work", ["/usr/lib/python3.11/site-packages"]),
        docker_config=secret,
        extra_insecure=(registry.host,),
    )
    client = Client(credentials=load_docker_config(secret), insecure=[auth_registry.host])
    pushed = parse(str(result["image"]))
    image = client.get_image(pushed)
    assert len(image.layers) == 2 and all(
        client.blob_exists(pushed, d.digest) for d in image.layers
    )
    env = json.loads(client.get_blob(pushed, image.config.digest))["config"]["Env"]
    assert "PYTHONPATH=/usr/lib/python3.11/site-packages:/base" in env


def test_tools_copied_alone_push_with_stdlib_only(registry: Registry, tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    install = copy_tools(str(tools))
    assert install == str(tools / "mlkube/envbuild/install.py")
    assert sorted(p.name for p in (tools / "mlkube").iterdir()) == [
        "__init__.py",
        "envbuild",
        "oci",
    ]
    base = push_image(
        Client(insecure=[registry.host]), f"{registry.host}/base/alone:1", [{"etc/base": b"alone"}]
    )
    # -I -S: no site-packages (nothing of the venv, no installed mlkube), no PYTHON* env.
    script = [sys.executable, "-I", "-S", str(tools / "mlkube/envbuild/push.py")]
    result, packages, _ = run_push(
        registry,
        str(base),
        make_layer(tmp_path / "layer"),
        make_work(tmp_path / "work"),
        repo="alone/env",
        python=script,
    )
    assert packages == PACKAGES and str(result["image"]).startswith(f"{registry.host}/alone/env@")
    shutil.rmtree(tools)
