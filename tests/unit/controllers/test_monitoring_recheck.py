"""has_monitoring_api trusts a cached answer that has both kinds; one that lacks them (a
discovery taken while the CRDs were half installed or removed) is asked again at a shorter
age, so a Prometheus Operator installed a moment ago is used by the next pass."""

from __future__ import annotations

from mlkube.controllers.endpoint_children import RECHECK_MISSING_SECONDS, has_monitoring_api

BOTH = {"ServiceMonitor", "PrometheusRule"}


class Discovery:
    def __init__(self, cached: set[str], fresh: set[str]) -> None:
        self.cached, self.fresh = cached, fresh
        self.asked: list[float | None] = []

    def served_kinds(self, api_version: str, max_age: float | None = None) -> set[str]:
        self.asked.append(max_age)
        return self.cached if max_age is None else self.fresh


def test_a_cached_answer_with_both_kinds_is_enough() -> None:
    kube = Discovery(cached=BOTH, fresh=set())
    assert has_monitoring_api(kube)  # type: ignore[arg-type]
    assert kube.asked == [None]


def test_a_stale_half_answer_is_checked_again() -> None:
    kube = Discovery(cached={"PrometheusRule"}, fresh=BOTH)
    assert has_monitoring_api(kube)  # type: ignore[arg-type]
    assert kube.asked == [None, RECHECK_MISSING_SECONDS]
    assert not has_monitoring_api(Discovery(cached=set(), fresh=set()))  # type: ignore[arg-type]
