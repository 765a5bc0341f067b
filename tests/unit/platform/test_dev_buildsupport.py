"""The dev cluster's build support as data: registry config, containerd hosts.toml, the
find-links page and the operator's build settings (docs/environments.md §2.3, §8)."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

from mlkube.devcluster import buildsupport, mirror, registry
from mlkube.devcluster.realnode_config import NodePaths, build_containerd_config

ADDRS = buildsupport.Addresses("10.86.0.1", 5000, 5080)


def test_registry_config_listens_only_where_told_and_stores_in_the_state_dir() -> None:
    cfg = registry.build_config("10.86.0.1:5000", Path("/w/node/registry/storage"))
    assert cfg["http"]["addr"] == "10.86.0.1:5000"
    assert "debug" not in cfg["http"]  # a debug server would listen on another port
    assert "tls" not in cfg["http"]
    assert cfg["storage"]["filesystem"]["rootdirectory"] == "/w/node/registry/storage"


def test_containerd_pulls_from_the_dev_registry_over_plain_http(tmp_path: Path) -> None:
    paths = NodePaths(tmp_path / "node")
    cfg = tomllib.loads(build_containerd_config(paths, "localhost/mlkube-pause:abc"))
    hosts_dir = cfg["plugins"]["io.containerd.grpc.v1.cri"]["registry"]["config_path"]
    assert hosts_dir == str(paths.registry_hosts_dir)
    registry.write_hosts(Path(hosts_dir), "10.86.0.1:5000")
    hosts = tomllib.loads((Path(hosts_dir) / "10.86.0.1:5000" / "hosts.toml").read_text())
    assert hosts["server"] == "http://10.86.0.1:5000"
    assert hosts["host"]["http://10.86.0.1:5000"]["capabilities"] == ["pull", "resolve"]


def test_find_links_page_links_every_wheel_with_its_digest(tmp_path: Path) -> None:
    wheel = tmp_path / "lightgbm-4.7.0-py3-none-manylinux_2_28_x86_64.whl"
    wheel.write_bytes(b"wheel bytes")
    page = mirror.build_find_links_page([wheel])
    digest = hashlib.sha256(b"wheel bytes").hexdigest()
    assert f'href="{wheel.name}#sha256={digest}"' in page


def test_mirror_cache_key_follows_its_contents(monkeypatch: object) -> None:
    import pytest

    key = mirror.cache_key()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mirror, "PIP_REQUIREMENTS", (*mirror.PIP_REQUIREMENTS, "xgboost==2.1.0"))
        assert mirror.cache_key() != key
    assert mirror.cache_key() == key


def test_operator_env_points_builds_at_the_registry_and_mirror() -> None:
    pushed = {"serving": "10.86.0.1:5000/mlkube/serving@sha256:" + "a" * 64}
    env = buildsupport.operator_env(ADDRS, pushed)
    assert env["MLKUBE_BUILD_REGISTRY"] == "10.86.0.1:5000/mlkube"
    assert env["MLKUBE_BUILD_REGISTRY_INSECURE"] == "true"
    assert env["MLKUBE_BUILD_PIP_FIND_LINKS"] == "http://10.86.0.1:5080/wheels/index.html"
    assert env["MLKUBE_BUILD_PIP_NO_INDEX"] == "true"
    assert env["MLKUBE_BUILD_PIP_TRUSTED_HOSTS"] == "10.86.0.1"
    assert env["MLKUBE_BUILD_APT_SOURCES"] == "deb [trusted=yes] http://10.86.0.1:5080/apt ./"
    # The tools run from the imported serving image (by tag), never the registry copy.
    assert "MLKUBE_BUILD_TOOLS_IMAGE" not in env
    # Variants that were not built are served by the full serving image.
    curated = dict(kv.split("=", 1) for kv in env["MLKUBE_CURATED_ENVIRONMENTS"].split(","))
    assert curated == {name: pushed["serving"] for name in buildsupport.CURATED_TARGETS}


def test_curated_environments_use_their_variant_when_it_was_built() -> None:
    pushed = {
        "serving": "r/mlkube/serving@sha256:1",
        "serving-onnx": "r/mlkube/serving-onnx@sha256:2",
    }
    refs = buildsupport.curated_refs(pushed)
    assert refs["mlkube-onnx"] == "r/mlkube/serving-onnx@sha256:2"
    assert refs["mlkube-sklearn"] == "r/mlkube/serving@sha256:1"


def test_kwok_mode_has_no_curated_images() -> None:
    env = buildsupport.operator_env(buildsupport.Addresses("127.0.0.1", 1, 2), {})
    assert "MLKUBE_CURATED_ENVIRONMENTS" not in env
    assert env["MLKUBE_BUILD_REGISTRY"] == "127.0.0.1:1/mlkube"
