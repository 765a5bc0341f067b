"""Build settings (docs/environments.md §2.3): parsed from the operator's environment, bad
values refused at start with the variable named."""

from __future__ import annotations

import pytest

from mlkube.builders.build_config import (
    BuildConfig,
    BuildConfigError,
    build_namespace,
    parse_build_config,
    parse_registry,
)
from mlkube.builders.operator_config import OperatorConfigError, parse_operator_config
from mlkube.reconcile.environment_key import PipSettings


def test_defaults_have_no_registry() -> None:
    config = parse_build_config({})
    assert config == BuildConfig()
    assert config.image_repository() is None
    assert config.timeout_seconds == 1800
    assert build_namespace(config, "mlkube-system") == "mlkube-system"


def test_every_setting_is_read() -> None:
    config = parse_build_config(
        {
            "MLKUBE_BUILD_REGISTRY": "127.0.0.1:5000/mlkube",
            "MLKUBE_BUILD_REGISTRY_INSECURE": "true",
            "MLKUBE_BUILD_PUSH_SECRET": "envbuild-push",
            "MLKUBE_IMAGE_PULL_SECRET": "envpull",
            "MLKUBE_BUILD_NAMESPACE": "mlkube-builds",
            "MLKUBE_BUILD_TOOLS_IMAGE": "localhost/mlkube-serving:abc",
            "MLKUBE_BUILD_TIMEOUT_SECONDS": "600",
            "MLKUBE_BUILD_PIP_INDEX_URL": "https://pypi.example/simple",
            "MLKUBE_BUILD_PIP_EXTRA_INDEX_URLS": "https://a/simple, https://b/simple",
            "MLKUBE_BUILD_PIP_FIND_LINKS": "http://10.0.0.1:8081/wheels/",
            "MLKUBE_BUILD_PIP_NO_INDEX": "1",
            "MLKUBE_BUILD_PIP_TRUSTED_HOSTS": "pypi.example 10.0.0.1",
            "MLKUBE_BUILD_APT_SOURCES": "deb [trusted=yes] http://10.0.0.1:8081/apt ./\n"
            "deb http://deb.debian.org/debian bookworm main",
            "MLKUBE_CURATED_ENVIRONMENTS": "mlkube-onnx=r/onnx@sha256:1,mlkube-sklearn=r/sk:1",
        }
    )
    assert config.registry == "127.0.0.1:5000"
    assert config.image_repository() == "127.0.0.1:5000/mlkube/environments"
    assert config.repository("packages") == "mlkube/packages"
    assert config.registry_insecure
    assert (config.push_secret, config.image_pull_secret) == ("envbuild-push", "envpull")
    assert build_namespace(config, "mlkube-system") == "mlkube-builds"
    assert config.tools_image == "localhost/mlkube-serving:abc"
    assert config.timeout_seconds == 600
    assert config.pip == PipSettings(
        index_url="https://pypi.example/simple",
        extra_index_urls=("https://a/simple", "https://b/simple"),
        find_links=("http://10.0.0.1:8081/wheels/",),
        no_index=True,
        trusted_hosts=("pypi.example", "10.0.0.1"),
    )
    assert config.apt_sources == (
        "deb [trusted=yes] http://10.0.0.1:8081/apt ./",
        "deb http://deb.debian.org/debian bookworm main",
    )
    assert config.curated == (("mlkube-onnx", "r/onnx@sha256:1"), ("mlkube-sklearn", "r/sk:1"))


@pytest.mark.parametrize(
    ("text", "host", "prefix"),
    [
        ("registry.example", "registry.example", ""),
        ("localhost:5000/a/b", "localhost:5000", "a/b"),
        ("10.88.0.1:5000/mlkube/", "10.88.0.1:5000", "mlkube"),
        ("[::1]:5000/x", "[::1]:5000", "x"),
    ],
)
def test_registry_forms(text: str, host: str, prefix: str) -> None:
    assert parse_registry(text) == (host, prefix)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MLKUBE_BUILD_REGISTRY": "http://r:5000/x"}, "without a scheme"),
        ({"MLKUBE_BUILD_REGISTRY": "r:5000/Team"}, "lower-case path components"),
        ({"MLKUBE_BUILD_REGISTRY": "r:5000//x"}, "lower-case path components"),
        ({"MLKUBE_BUILD_REGISTRY": "bad host/x"}, "is not host"),
        ({"MLKUBE_BUILD_REGISTRY_INSECURE": "maybe"}, "must be true or false"),
        ({"MLKUBE_BUILD_TIMEOUT_SECONDS": "10"}, ">= 60"),
        ({"MLKUBE_BUILD_TIMEOUT_SECONDS": "1h"}, ">= 60"),
        ({"MLKUBE_BUILD_PUSH_SECRET": "Push_Secret"}, "not a Kubernetes object name"),
        ({"MLKUBE_BUILD_PIP_NO_INDEX": "true"}, "needs MLKUBE_BUILD_PIP_FIND_LINKS"),
        ({"MLKUBE_BUILD_APT_SOURCES": "http://mirror bookworm main"}, "is not a 'deb"),
        ({"MLKUBE_BUILD_APT_SOURCES": "deb http://mirror"}, "is not a 'deb"),
        ({"MLKUBE_CURATED_ENVIRONMENTS": "mlkube-torch=img"}, "not a curated environment"),
        ({"MLKUBE_CURATED_ENVIRONMENTS": "mlkube-onnx"}, "is not name=image"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(BuildConfigError, match=message) as raised:
        parse_build_config(env)
    assert next(iter(env)) in str(raised.value)


def test_operator_config_carries_build_settings_and_their_errors() -> None:
    config = parse_operator_config({"MLKUBE_BUILD_REGISTRY": "r.example/ml"})
    assert config.build.image_repository() == "r.example/ml/environments"
    with pytest.raises(OperatorConfigError, match="MLKUBE_BUILD_TIMEOUT_SECONDS"):
        parse_operator_config({"MLKUBE_BUILD_TIMEOUT_SECONDS": "0"})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("MLKUBE_BUILD_PIP_INDEX_URL", "https://bob:s3cret@pypi.example/simple"),
        ("MLKUBE_BUILD_PIP_FIND_LINKS", "https://bob:s3cret@wheels.example/"),
        ("MLKUBE_BUILD_APT_SOURCES", "deb https://bob:s3cret@apt.example/debian bookworm main"),
    ],
)
def test_credentials_in_package_urls_are_refused_without_echoing_them(key: str, value: str) -> None:
    """They would reach every build ConfigMap and pip's log: secrets come only from Secrets."""
    with pytest.raises(BuildConfigError) as err:
        parse_build_config({key: value})
    assert "user:password@" in str(err.value) and "s3cret" not in str(err.value)
