"""The chart's `build.*` and `curatedEnvironments` values, rendered by the real helm, give the
operator an environment its own parser reads back as those values (docs/environments.md §2.3)."""

from __future__ import annotations

from mlkube.builders.operator_config import parse_operator_config
from mlkube.reconcile.environment_key import PipSettings
from support.helm import by_kind, helm_binary, render_chart


def operator_env(values: list[str]) -> dict[str, str]:
    objects = render_chart(helm_binary(), "ops", values)
    (deployment,) = by_kind(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def test_default_chart_builds_nothing_and_parses() -> None:
    build = parse_operator_config(operator_env([])).build
    assert build.registry is None and build.namespace == "ops"
    assert build.timeout_seconds == 1800 and build.curated == ()


def test_build_values_reach_the_operator_config() -> None:
    env = operator_env(
        [
            "build.registry=10.88.0.1:5000/mlkube",
            "build.insecure=true",
            "build.pushSecret=envbuild-push",
            "build.imagePullSecret=envpull",
            "build.namespace=builds",
            "build.timeoutSeconds=900",
            "build.pip.findLinks={http://10.88.0.1:8081/wheels/}",
            "build.pip.noIndex=true",
            "build.pip.trustedHosts={10.88.0.1}",
            "build.aptSources={deb [trusted=yes] http://10.88.0.1:8081/apt ./}",
            "curatedEnvironments.mlkube-onnx=10.88.0.1:5000/mlkube/serving-onnx@sha256:1",
        ]
    )
    build = parse_operator_config(env).build
    assert build.image_repository() == "10.88.0.1:5000/mlkube/environments"
    assert build.registry_insecure
    assert (build.push_secret, build.image_pull_secret) == ("envbuild-push", "envpull")
    assert (build.namespace, build.timeout_seconds) == ("builds", 900)
    assert build.pip == PipSettings(
        find_links=("http://10.88.0.1:8081/wheels/",), no_index=True, trusted_hosts=("10.88.0.1",)
    )
    assert build.apt_sources == ("deb [trusted=yes] http://10.88.0.1:8081/apt ./",)
    assert build.curated == (("mlkube-onnx", "10.88.0.1:5000/mlkube/serving-onnx@sha256:1"),)
