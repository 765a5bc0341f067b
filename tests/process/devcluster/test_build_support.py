"""The dev cluster's registry and package mirror as real processes (kwok-mode addresses on
loopback): the registry answers the distribution API and keeps blobs in the state dir, pip
installs from the mirror's find-links page with no index, the flat apt repository lists its
packages, and stopping the processes frees their ports (docs/environments.md §8)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlkube.devcluster import buildsupport, kwok_curated, mirror, procs, registry
from mlkube.devcluster.cluster import REPO_ROOT


@pytest.fixture(scope="module")
def support(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[buildsupport.Addresses, Path]]:
    state = tmp_path_factory.mktemp("dev")
    addrs = buildsupport.Addresses("127.0.0.1", procs.free_port(), procs.free_port())
    pids: dict[str, int] = {}

    def spawn(name: str, argv: list[str]) -> None:
        pids[name] = procs.spawn(name, argv, state / "logs")

    try:
        buildsupport.start(spawn, REPO_ROOT / "hack", state, addrs, timeout=120)
        yield addrs, state
    finally:
        procs.stop_all(list(pids.values()))
    assert not any(procs.alive(p) for p in pids.values())
    assert not registry.ready(addrs.registry)


def _put_blob(address: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = urllib.request.Request(f"http://{address}/v2/t/app/blobs/uploads/", method="POST")
    with urllib.request.urlopen(start) as resp:
        location = resp.headers["Location"]
    sep = "&" if "?" in location else "?"
    url = location if location.startswith("http") else f"http://{address}{location}"
    put = urllib.request.Request(f"{url}{sep}digest={digest}", data=data, method="PUT")
    put.add_header("Content-Type", "application/octet-stream")
    with urllib.request.urlopen(put) as resp:
        assert resp.status == 201
    return digest


def test_registry_stores_a_manifest_and_reports_its_digest(
    support: tuple[buildsupport.Addresses, Path],
) -> None:
    addrs, state = support
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _put_blob(addrs.registry, config), "size": len(config)},
        "layers": [],
    }).encode()  # fmt: skip
    assert registry.manifest_digest(addrs.registry, "t/app", "v1") is None
    put = urllib.request.Request(
        f"http://{addrs.registry}/v2/t/app/manifests/v1", data=manifest, method="PUT"
    )
    put.add_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
    with urllib.request.urlopen(put) as resp:
        assert resp.status == 201
    expected = "sha256:" + hashlib.sha256(manifest).hexdigest()
    assert registry.manifest_digest(addrs.registry, "t/app", "v1") == expected
    # Storage is in the dev state dir (removed with it; nothing elsewhere).
    assert any((state / "registry" / "storage").rglob("data"))


def test_pip_installs_from_the_mirror_without_an_index(
    support: tuple[buildsupport.Addresses, Path],
    tmp_path: Path,
) -> None:
    addrs, _ = support
    env = buildsupport.operator_env(addrs, {})
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-index",
            "--find-links", env["MLKUBE_BUILD_PIP_FIND_LINKS"],
            "--trusted-host", env["MLKUBE_BUILD_PIP_TRUSTED_HOSTS"],
            "--only-binary=:all:", "--python-version", mirror.PYTHON_VERSION,
            "--platform", "manylinux_2_28_x86_64", "--dest", str(tmp_path),
            *mirror.PIP_REQUIREMENTS]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [p.name.split("-")[0] for p in tmp_path.glob("*.whl")] == ["lightgbm"]


def test_the_flat_apt_repository_lists_and_serves_its_packages(
    support: tuple[buildsupport.Addresses, Path],
) -> None:
    addrs, _ = support
    source = buildsupport.operator_env(addrs, {})["MLKUBE_BUILD_APT_SOURCES"]
    base = source.split()[2]
    with urllib.request.urlopen(f"{base}/Packages") as resp:
        packages = resp.read().decode()
    stanzas = [dict(line.split(": ", 1) for line in s.splitlines() if ": " in line)
               for s in packages.strip().split("\n\n")]  # fmt: skip
    assert {s["Package"] for s in stanzas} == set(mirror.APT_PACKAGES)
    with urllib.request.urlopen(f"{base}/{stanzas[0]['Filename'].removeprefix('./')}") as resp:
        assert hashlib.sha256(resp.read()).hexdigest() == stanzas[0]["SHA256"]


def test_kwok_mode_pushes_curated_stand_ins_that_resolve_to_digests(
    support: tuple[buildsupport.Addresses, Path],
) -> None:
    """The kwok mode has no images, but curated bases must resolve to digests: layer-less
    stand-ins named after the executor's sources (a source edit makes new digests)."""
    addrs, _ = support
    first = kwok_curated.push_stand_ins(addrs.registry, "sha256:" + "1" * 64)
    env = buildsupport.operator_env(addrs, first)
    curated = dict(kv.split("=", 1) for kv in env["MLKUBE_CURATED_ENVIRONMENTS"].split(","))
    assert curated["mlkube-onnx"] == first["serving-onnx"]
    repository, digest = first["serving-onnx"].removeprefix(f"{addrs.registry}/").split("@")
    assert registry.manifest_digest(addrs.registry, repository, "1" * 16) == digest
    again = kwok_curated.push_stand_ins(addrs.registry, "sha256:" + "1" * 64)
    assert again == first  # same sources, same digests
    edited = kwok_curated.push_stand_ins(addrs.registry, "sha256:" + "2" * 64)
    assert edited["serving-onnx"] != first["serving-onnx"]
