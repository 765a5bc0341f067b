"""The chart's helm-unittest suites (charts/mlkube/tests/*_test.yaml) run by the real plugin
(hack/helm-unittest/build.sh, v1.1.2 from the Go module proxy) in the real helm."""

from __future__ import annotations

import subprocess

from support.helm import CHART, helm_binary, helm_env, helm_unittest_plugins


def test_helm_unittest_suites_pass() -> None:
    env = {**helm_env(), "HELM_PLUGINS": str(helm_unittest_plugins())}
    suites = sorted(path.name for path in (CHART / "tests").glob("*_test.yaml"))
    assert len(suites) >= 8, suites  # names, labels, env, schema, webhook, RBAC, CRDs, ...
    out = subprocess.run(
        [str(helm_binary()), "unittest", "--color=false", str(CHART)],
        capture_output=True, text=True, env=env, check=False, timeout=300,
    )  # fmt: skip
    report = out.stdout + out.stderr
    assert out.returncode == 0, report
    assert f"Test Suites: {len(suites)} passed, {len(suites)} total" in report, report
