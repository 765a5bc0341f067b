"""The Environment controller against the in-memory Kube and registry (docs/environments.md
§1-§3): resolve, the three ways to reuse a build before starting one, the build Job's
verdict, and the failures users must be told about (NoRegistry, Duplicate, conda, logs)."""

from __future__ import annotations

import datetime
import json
from typing import Any

from mlkube.controllers import environment as controller
from mlkube.controllers.environment_jobs import MAX_ATTEMPTS
from mlkube.controllers.environment_ports import Deps
from support.environments import (
    BASE,
    BASE_DIGEST,
    BUILD_NAMESPACE,
    REGISTRY,
    FakeLogs,
    FakeRegistry,
    digest_of,
    environment,
    fake_deps,
    key_of,
)
from support.fake_kube import DEFAULT_KINDS, FakeKube

NOW = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.UTC)
ENV = ("mlkube.dev/v1alpha1", "Environment")
BUILT = "sha256:" + "c" * 64


def cluster(*objs: dict[str, Any]) -> FakeKube:
    kube = FakeKube(kinds=DEFAULT_KINDS | {ENV})
    for obj in objs:
        kube.put(obj)
    return kube


def run(kube: FakeKube, deps: Deps, name: str, attempt: int = 0) -> controller.EnvironmentOutcome:
    """One pass over the stored object, its status written back as the handler does."""
    obj = kube.stored(*ENV, name, "team")
    outcome = controller.reconcile(kube, deps, obj, now=NOW, attempt=attempt)
    store_status(kube, name, outcome)
    return outcome


def store_status(kube: FakeKube, name: str, outcome: controller.EnvironmentOutcome) -> None:
    if outcome.status:
        kube.mutate((*ENV, "team", name),
                    lambda o: o.setdefault("status", {}).update(outcome.status))  # fmt: skip


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def jobs(kube: FakeKube) -> list[dict[str, Any]]:
    return kube.list("batch/v1", "Job", BUILD_NAMESPACE)


def finish_job(kube: FakeKube, job: dict[str, Any], *, ok: bool, logs: FakeLogs,
               failing: str = "install", log: str = "", message: str = "tail") -> None:  # fmt: skip
    """The Job controller's and the kubelet's part: the Job's condition and its pod."""
    name = job["metadata"]["name"]
    cond = {
        "type": "Complete" if ok else "Failed",
        "status": "True",
        "message": "BackoffLimitExceeded",
    }
    kube.mutate(("batch/v1", "Job", BUILD_NAMESPACE, name), lambda j: j.update(status={
        "conditions": [cond], "startTime": "2026-11-30T11:59:00Z",
        "completionTime": "2026-11-30T11:59:42Z"}))  # fmt: skip
    report = {
        "digest": BUILT,
        "image": f"{REGISTRY}/environments@{BUILT}",
        "sizeBytes": 1234,
        "python": "3.11.2",
        "serving": {"compatible": True, "version": "0.1.0"},
    }
    pod = f"{name}-abcde"
    if ok:
        statuses: dict[str, Any] = {
            "containerStatuses": [
                {
                    "name": "push",
                    "state": {"terminated": {"exitCode": 0, "message": json.dumps(report)}},
                }
            ]
        }
        logs.logs[(BUILD_NAMESPACE, pod, "push")] = "pushing layer\n" + json.dumps(
            {"mlkubePackages": ["lightgbm==4.5.0", "numpy==2.1.3"]}
        )
    else:
        statuses = {
            "initContainerStatuses": [
                {"name": "tools", "state": {"terminated": {"exitCode": 0}}},
                {"name": failing, "state": {"terminated": {"exitCode": 1, "message": message}}},
            ]
        }
        logs.logs[(BUILD_NAMESPACE, pod, failing)] = log
    kube.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": pod, "namespace": BUILD_NAMESPACE, "labels": {"job-name": name},
        "creationTimestamp": "2026-11-30T11:59:00Z"}, "status": statuses})  # fmt: skip


def poll(kube: FakeKube, deps: Deps, name: str) -> controller.EnvironmentOutcome:
    outcome = controller.poll_build(kube, deps, kube.stored(*ENV, name, "team"), NOW)
    store_status(kube, name, outcome)
    return outcome


# -- image: environments ---------------------------------------------------------------------


def test_an_image_tag_is_pinned_by_digest_and_recorded() -> None:
    registry = FakeRegistry(tags={"registry.example/team/scorer:2.1": BUILT})
    kube = cluster(environment("scorer", image="registry.example/team/scorer:2.1"))
    outcome = run(kube, fake_deps(registry), "scorer")
    status = outcome.status
    assert status["phase"] == "Ready"
    assert status["image"] == f"registry.example/team/scorer@{BUILT}"
    assert status["imageDigest"] == BUILT
    assert status["resolvedFrom"] == "registry.example/team/scorer:2.1"
    assert condition(status, "Resolved")["status"] == "True"
    assert condition(status, "Ready")["status"] == "True"


def test_an_image_already_pinned_is_not_looked_up() -> None:
    registry = FakeRegistry(tags={})
    kube = cluster(environment("scorer", image=f"registry.example/scorer@{BUILT}"))
    status = run(kube, fake_deps(registry), "scorer").status
    assert status["phase"] == "Ready" and status["imageDigest"] == BUILT
    assert "resolvedFrom" not in status and registry.asked == []


def test_a_tag_that_cannot_be_resolved_is_retried_with_backoff() -> None:
    kube = cluster(environment("scorer", image="registry.example/team/scorer:nope"))
    first = run(kube, fake_deps(FakeRegistry(tags={})), "scorer")
    assert first.status["phase"] == "Resolving"
    resolved = condition(first.status, "Resolved")
    assert resolved["status"] == "False" and resolved["reason"] == "ImageNotFound"
    assert "registry.example/team/scorer:nope" in resolved["message"]
    assert condition(first.status, "Ready")["status"] == "False"
    assert condition(first.status, "Stalled")["status"] == "True"  # someone must push it
    later = run(kube, fake_deps(FakeRegistry(down=True)), "scorer", attempt=3)
    assert first.retry_delay is not None and later.retry_delay is not None
    assert later.retry_delay > first.retry_delay
    assert condition(later.status, "Resolved")["reason"] == "RegistryUnavailable"
    assert condition(later.status, "Reconciling")["status"] == "True"
    assert condition(later.status, "Stalled")["status"] == "False"
    assert "connection refused" in later.status["message"]


# -- failures a user must act on -------------------------------------------------------------


def test_no_registry_says_how_to_configure_one() -> None:
    kube = cluster(environment("lgbm"))
    outcome = run(kube, fake_deps(build_registry=None), "lgbm")
    built = condition(outcome.status, "Built")
    # Pending, not Failed: once the registry is configured, the operator's restart builds it.
    assert outcome.status["phase"] == "Pending"
    assert built["status"] == "False" and built["reason"] == "NoRegistry"
    assert "MLKUBE_BUILD_REGISTRY" in built["message"] and "build.registry" in built["message"]
    assert condition(outcome.status, "Stalled")["status"] == "True"
    assert ("Warning", "NoRegistry", built["message"]) in outcome.events
    assert jobs(kube) == []
    # The operator restarted with a registry configured: resume runs the pass again.
    assert run(kube, fake_deps(), "lgbm").status["phase"] == "Building"
    assert len(jobs(kube)) == 1


def test_conda_packages_other_than_python_and_pip_fail_by_name() -> None:
    conda = "dependencies: [python=3.11, pip, numpy=1.26, {pip: [lightgbm]}]"
    kube = cluster(environment("c", build={"base": "mlkube-sklearn:0.1.0", "conda": conda}))
    outcome = run(kube, fake_deps(), "c")
    built = condition(outcome.status, "Built")
    assert built["reason"] == "CondaPackagesUnsupported"
    assert "numpy=1.26" in built["message"] and "lightgbm" not in built["message"]
    assert jobs(kube) == []


def test_the_younger_of_two_claims_on_one_name_version_is_a_duplicate() -> None:
    older = environment("lgbm-1", environment_name="lgbm", created="2026-11-30T09:00:00Z")
    younger = environment("lgbm-one", environment_name="lgbm", created="2026-11-30T10:00:00Z")
    kube = cluster(older, younger)
    dup = run(kube, fake_deps(), "lgbm-one")
    ready = condition(dup.status, "Ready")
    assert dup.status["phase"] == "Pending" and ready["reason"] == "Duplicate"
    assert condition(dup.status, "Stalled")["status"] == "True"
    assert "lgbm:1" in ready["message"] and "lgbm-1" in ready["message"]
    assert run(kube, fake_deps(), "lgbm-1").status["phase"] == "Building"


def test_an_unknown_curated_base_lists_the_known_ones() -> None:
    kube = cluster(environment("x", build={"base": "mlkube-torch:0.1.0", "pip": ["a"]}))
    outcome = run(kube, fake_deps(), "x")
    resolved = condition(outcome.status, "Resolved")
    assert outcome.status["phase"] == "Failed" and outcome.retry_delay is None
    assert resolved["reason"] == "UnknownCuratedEnvironment"
    assert "mlkube-sklearn:0.1.0" in resolved["message"] and "mlkube-onnx" in resolved["message"]


# -- building, and reusing instead -----------------------------------------------------------


def test_a_new_build_creates_the_job_and_its_inputs_owned_by_it() -> None:
    kube = cluster(environment("lgbm"))
    outcome = run(kube, fake_deps(), "lgbm")
    status = outcome.status
    assert status["phase"] == "Building"
    assert status["base"] == {
        "reference": "mlkube-sklearn:0.1.0",
        "image": f"{REGISTRY}/serving-sklearn@{BASE_DIGEST}",
    }
    assert status["buildKey"].startswith("sha256:")
    (job,) = jobs(kube)
    name = job["metadata"]["name"]
    assert (
        status["build"]["job"] == f"{BUILD_NAMESPACE}/{name}" and status["build"]["reused"] is False
    )
    assert f"job/{name}" in status["build"]["logs"]
    config_map = kube.stored("v1", "ConfigMap", name, BUILD_NAMESPACE)
    (owner,) = config_map["metadata"]["ownerReferences"]
    assert owner["kind"] == "Job" and owner["uid"] == job["metadata"]["uid"]
    assert condition(status, "Built")["status"] == "Unknown"
    assert condition(status, "Reconciling")["status"] == "True"
    assert [e[1] for e in outcome.events] == ["BuildStarted"]
    # Creation order (§2.1): inputs first, so the pod never waits for them.
    creates = [k[1] for k in kube.written("create")]
    assert creates == ["ConfigMap", "Job"]


def test_a_second_environment_with_the_same_inputs_joins_the_running_job() -> None:
    kube = cluster(environment("a"), environment("b", created="2026-11-30T10:00:01Z"))
    run(kube, fake_deps(), "a")
    second = run(kube, fake_deps(), "b")
    assert second.status["phase"] == "Building"
    assert len(jobs(kube)) == 1
    assert "joined" in second.status["message"]
    assert second.status["buildKey"] == kube.stored(*ENV, "a", "team")["status"]["buildKey"]


def test_the_job_verdict_reads_the_termination_message_and_the_package_line() -> None:
    logs = FakeLogs()
    deps = fake_deps(logs=logs)
    kube = cluster(environment("lgbm"))
    run(kube, deps, "lgbm")
    assert poll(kube, deps, "lgbm").status == {}  # still running: nothing to write
    finish_job(kube, jobs(kube)[0], ok=True, logs=logs)
    outcome = poll(kube, deps, "lgbm")
    status = outcome.status
    assert status["phase"] == "Ready"
    assert status["image"] == f"{REGISTRY}/environments@{BUILT}" and status["imageDigest"] == BUILT
    assert status["sizeBytes"] == 1234 and status["python"] == "3.11.2"
    assert status["packages"] == ["lightgbm==4.5.0", "numpy==2.1.3"]
    assert status["serving"]["compatible"] is True
    assert status["build"]["durationSeconds"] == 42
    assert condition(status, "Built")["status"] == "True"
    assert [e[1] for e in outcome.events] == ["Built"]


def test_a_failed_build_shows_the_failing_containers_log_tail() -> None:
    logs = FakeLogs()
    deps = fake_deps(logs=logs)
    kube = cluster(environment("lgbm"))
    run(kube, deps, "lgbm")
    log = (
        "\n".join(f"line {i}" for i in range(100))
        + "\nERROR: No matching distribution for lightgbm==9"
    )
    finish_job(kube, jobs(kube)[0], ok=False, logs=logs, log=log)
    outcome = poll(kube, deps, "lgbm")
    built = condition(outcome.status, "Built")
    assert outcome.status["phase"] == "Failed" and built["reason"] == "BuildFailed"
    assert "container install failed" in built["message"]
    assert "No matching distribution for lightgbm==9" in built["message"]
    assert "line 99" in built["message"] and "line 5\n" not in built["message"]
    assert outcome.events[0][:2] == ("Warning", "BuildFailed")


def test_the_tools_own_reason_is_the_failures_reason() -> None:
    logs = FakeLogs()
    deps = fake_deps(logs=logs)
    kube = cluster(environment("lgbm"))
    run(kube, deps, "lgbm")
    verdict = {"error": "conda pins python 3.10, the base has 3.11.2", "reason": "PythonMismatch"}
    finish_job(
        kube, jobs(kube)[0], ok=False, logs=logs, log="resolving\n", message=json.dumps(verdict)
    )
    outcome = poll(kube, deps, "lgbm")
    built = condition(outcome.status, "Built")
    assert built["reason"] == "PythonMismatch"
    assert "conda pins python 3.10, the base has 3.11.2" in built["message"]
    assert "resolving" in built["message"]


def test_a_ready_environment_with_the_same_key_is_reused_without_a_job() -> None:
    logs = FakeLogs()
    deps = fake_deps(logs=logs)
    kube = cluster(environment("a"))
    run(kube, deps, "a")
    finish_job(kube, jobs(kube)[0], ok=True, logs=logs)
    poll(kube, deps, "a")
    kube.put(environment("b", created="2026-11-30T11:00:00Z"))
    creates = len(kube.written("create"))
    outcome = run(kube, deps, "b")
    status = outcome.status
    assert status["phase"] == "Ready" and status["imageDigest"] == BUILT
    assert status["build"]["reused"] is True and "Environment a" in status["message"]
    assert status["packages"] == ["lightgbm==4.5.0", "numpy==2.1.3"]
    assert len(kube.written("create")) == creates
    assert [e[1] for e in outcome.events] == ["BuildReused"]


def test_the_registry_tag_of_the_key_is_reused_with_its_packages() -> None:
    registry = FakeRegistry()
    deps = fake_deps(registry)
    obj = environment("lgbm")
    key = key_of(obj)
    registry.push_build(key, BUILT, ["lightgbm==4.5.0"])
    kube = cluster(obj)
    status = run(kube, deps, "lgbm").status
    assert status["phase"] == "Ready" and status["image"] == f"{REGISTRY}/environments@{BUILT}"
    assert status["build"]["reused"] is True and status["packages"] == ["lightgbm==4.5.0"]
    assert status["python"] == "3.11.2" and status["sizeBytes"] == 99
    assert jobs(kube) == []


def test_a_job_deleted_before_its_verdict_is_started_again() -> None:
    kube = cluster(environment("lgbm"))
    deps = fake_deps()
    run(kube, deps, "lgbm")
    (job,) = jobs(kube)
    kube.delete("batch/v1", "Job", job["metadata"]["name"], BUILD_NAMESPACE)
    outcome = poll(kube, deps, "lgbm")
    assert outcome.status["phase"] == "Building" and len(jobs(kube)) == 1


def job_names(kube: FakeKube) -> list[str]:
    return sorted(j["metadata"]["name"] for j in jobs(kube))


def test_a_failed_job_is_not_the_verdict_of_a_later_environment() -> None:
    """A transient failure must not fail every identical Environment for the Job's TTL: a new
    one starts the next attempt (the failed Job stays, with its logs), and succeeds."""
    logs = FakeLogs()
    deps = fake_deps(logs=logs)
    kube = cluster(environment("a"))
    run(kube, deps, "a")
    (first,) = job_names(kube)
    finish_job(kube, jobs(kube)[0], ok=False, logs=logs, log="Connection reset by peer")
    assert poll(kube, deps, "a").status["phase"] == "Failed"
    kube.put(environment("b", environment_name="b"))
    status = run(kube, deps, "b").status
    assert status["phase"] == "Building"
    assert job_names(kube) == [first, first + "-r1"]
    assert status["build"]["job"] == f"{BUILD_NAMESPACE}/{first}-r1"
    retry = kube.stored("v1", "ConfigMap", first + "-r1", BUILD_NAMESPACE)
    assert retry["metadata"]["ownerReferences"][0]["name"] == first + "-r1"
    finish_job(kube, kube.stored("batch/v1", "Job", first + "-r1", BUILD_NAMESPACE),
               ok=True, logs=logs)  # fmt: skip
    assert poll(kube, deps, "b").status["phase"] == "Ready"


def test_identical_environments_after_a_failure_share_one_new_attempt() -> None:
    logs = FakeLogs()
    deps = fake_deps(logs=logs)
    kube = cluster(environment("a"))
    run(kube, deps, "a")
    finish_job(kube, jobs(kube)[0], ok=False, logs=logs, log="boom")
    for name in ("b", "c"):
        kube.put(environment(name, environment_name=name))
        assert run(kube, deps, name).status["phase"] == "Building"
    assert len(jobs(kube)) == 2  # the failed one and one new attempt, joined by both


def test_a_failed_environment_builds_again_when_its_description_changes() -> None:
    logs = FakeLogs()
    deps = fake_deps(logs=logs)
    kube = cluster(environment("a"))
    run(kube, deps, "a")
    finish_job(kube, jobs(kube)[0], ok=False, logs=logs, log="boom")
    failed = poll(kube, deps, "a").status
    assert "change this Environment's spec.description" in failed["message"]
    assert run(kube, deps, "a").status == {}  # same generation: the verdict stands
    kube.mutate((*ENV, "team", "a"), lambda o: o["metadata"].update(generation=2))
    status = run(kube, deps, "a").status
    assert status["phase"] == "Building" and status["observedGeneration"] == 2
    assert len(jobs(kube)) == 2
    # A merge patch: the failed Job's times are removed (null), not kept next to the new Job.
    assert "completionTime" in failed["build"] and status["build"]["completionTime"] is None
    assert status["build"]["durationSeconds"] is None


def test_after_the_last_attempt_its_failure_is_the_verdict() -> None:
    """A build that fails every time is not retried forever while its Jobs are kept."""
    logs = FakeLogs()
    deps = fake_deps(logs=logs)
    kube = cluster()
    for n in range(MAX_ATTEMPTS):
        name = f"e{n}"
        kube.put(environment(name, environment_name=name))
        assert run(kube, deps, name).status["phase"] == "Building"
        job = kube.stored("batch/v1", "Job", run_job(kube, name), BUILD_NAMESPACE)
        finish_job(kube, job, ok=False, logs=logs, log=f"boom {n}")
    assert len(jobs(kube)) == MAX_ATTEMPTS
    kube.put(environment("last", environment_name="last"))
    status = run(kube, deps, "last").status
    assert status["phase"] == "Failed" and f"boom {MAX_ATTEMPTS - 1}" in status["message"]
    assert len(jobs(kube)) == MAX_ATTEMPTS


def run_job(kube: FakeKube, name: str) -> str:
    return str(kube.stored(*ENV, name, "team")["status"]["build"]["job"]).partition("/")[2]


def test_a_description_change_only_moves_observed_generation() -> None:
    registry = FakeRegistry(tags={"r.example/s:1": BUILT})
    kube = cluster(environment("s", image="r.example/s:1"))
    run(kube, fake_deps(registry), "s")
    kube.mutate((*ENV, "team", "s"), lambda o: o["metadata"].update(generation=2))
    registry.tags["r.example/s:1"] = digest_of("moved")  # the tag moved since: not followed
    status = run(kube, fake_deps(registry), "s").status
    assert status["observedGeneration"] == 2
    assert all(c["observedGeneration"] == 2 for c in status["conditions"])
    assert kube.stored(*ENV, "s", "team")["status"]["imageDigest"] == BUILT


def test_a_curated_base_resolves_through_the_operator_catalogue() -> None:
    registry = FakeRegistry()
    kube = cluster(environment("lgbm"))
    run(kube, fake_deps(registry), "lgbm")
    assert BASE in registry.asked


def test_used_by_lists_the_live_users_and_the_patch_only_when_it_changed() -> None:
    from mlkube.controllers.environment_usage import used_by_patch

    endpoint = {"apiVersion": "mlkube.dev/v1alpha1", "kind": "OnlineEndpoint",
                "metadata": {"name": "shop", "namespace": "team"},
                "spec": {"deployments": [{"name": "blue", "environment": "lgbm:1"}]}}  # fmt: skip
    pipeline = {"apiVersion": "mlkube.dev/v1alpha1", "kind": "Pipeline",
                "metadata": {"name": "train", "namespace": "team"},
                "spec": {"steps": [{"name": "fit", "environment": "lgbm@latest"}]}}  # fmt: skip
    other_ns = {**endpoint, "metadata": {"name": "elsewhere", "namespace": "other"}}
    kube = cluster(environment("lgbm"), endpoint, pipeline, other_ns)
    obj = kube.stored(*ENV, "lgbm", "team")
    patch = used_by_patch(kube, obj)
    assert patch == {"usedBy": [{"kind": "OnlineEndpoint", "name": "shop", "deployment": "blue"},
                                {"kind": "Pipeline", "name": "train", "step": "fit"}]}  # fmt: skip
    kube.put(environment("lgbm-2", environment_name="lgbm", version="2"))  # now the latest
    obj["status"] = patch
    assert used_by_patch(kube, obj) == {"usedBy": patch["usedBy"][:1]}
    obj["status"] = {"usedBy": patch["usedBy"][:1]}
    assert used_by_patch(kube, obj) is None


def test_an_image_environment_is_probed_once_ready() -> None:
    """Ready at once; the probe Job (build namespace) then reports python, packages and the
    serving contract; a probe whose container fails marks the image incompatible, saying why."""
    from mlkube.controllers.environment_probe import poll_probe

    logs = FakeLogs()
    registry = FakeRegistry(tags={"r.example/s:1": BUILT})
    deps = fake_deps(registry, logs)
    kube = cluster(environment("s", image="r.example/s:1"))
    assert run(kube, deps, "s").status["phase"] == "Ready"
    (job,) = jobs(kube)
    name = job["metadata"]["name"]
    assert name.startswith("envprobe-")
    assert kube.stored("v1", "ConfigMap", name, BUILD_NAMESPACE)["metadata"]["ownerReferences"]
    obj = kube.stored(*ENV, "s", "team")
    assert poll_probe(kube, deps, obj) == (None, False)  # still running
    kube.mutate(("batch/v1", "Job", BUILD_NAMESPACE, name), lambda j: j.update(status={
        "conditions": [{"type": "Complete", "status": "True"}]}))  # fmt: skip
    report = {"python": "3.12.1", "serving": {"compatible": True, "version": "0.1.0"},
              "packageCount": 2}  # fmt: skip
    kube.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": f"{name}-x", "namespace": BUILD_NAMESPACE, "labels": {"job-name": name}},
        "status": {"containerStatuses": [{"name": "probe", "state": {"terminated": {
            "exitCode": 0, "message": json.dumps(report)}}}]}})  # fmt: skip
    logs.logs[(BUILD_NAMESPACE, f"{name}-x", "probe")] = '{"mlkubePackages": ["a==1", "b==2"]}'
    facts, over = poll_probe(kube, deps, obj)
    assert over and facts == {"python": "3.12.1", "packages": ["a==1", "b==2"],
                              "serving": {"compatible": True, "version": "0.1.0"}}  # fmt: skip

    kube.mutate(("v1", "Pod", BUILD_NAMESPACE, f"{name}-x"), lambda p: p.update(status={
        "containerStatuses": [{"name": "probe", "state": {"terminated": {
            "exitCode": 127, "message": "exec: python3: not found"}}}]}))  # fmt: skip
    facts, over = poll_probe(kube, deps, obj)
    assert over and facts is not None and facts["serving"]["compatible"] is False
    assert "python3: not found" in facts["serving"]["message"]


def test_a_probe_that_never_ran_leaves_the_facts_unknown() -> None:
    from mlkube.controllers.environment_probe import poll_probe

    deps = fake_deps(FakeRegistry(tags={"r.example/s:1": BUILT}))
    kube = cluster(environment("s", image="r.example/s:1"))
    run(kube, deps, "s")
    (job,) = jobs(kube)
    failed = {"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}
    key = ("batch/v1", "Job", BUILD_NAMESPACE, job["metadata"]["name"])
    kube.mutate(key, lambda j: j.update(status={"conditions": [failed]}))
    assert poll_probe(kube, deps, kube.stored(*ENV, "s", "team")) == (None, True)


def test_a_probe_without_rights_in_the_build_namespace_is_given_up() -> None:
    """The environment stays Ready (with a Warning), and the probe loop ends instead of
    polling a namespace it may not read."""
    from mlkube.controllers.environment_probe import poll_probe
    from mlkube.k8s.errors import ApiError

    def forbid(verb: str, key: tuple[str, str, str, str]) -> None:
        if key[2] == BUILD_NAMESPACE:
            raise ApiError(403, "Forbidden", "jobs is forbidden")

    deps = fake_deps(FakeRegistry(tags={"r.example/s:1": BUILT}))
    kube = cluster(environment("s", image="r.example/s:1"))
    kube.before.append(forbid)
    outcome = run(kube, deps, "s")
    assert outcome.status["phase"] == "Ready"
    assert [e[1] for e in outcome.events] == ["Resolved", "ProbeNotStarted"]
    assert poll_probe(kube, deps, kube.stored(*ENV, "s", "team")) == (None, True)


def test_packaging_waits_for_a_verified_model_and_fetches_it_in_the_build() -> None:
    """spec.model (§5): the verified artifact digest is a build input (another key than the
    same environment without it) and the Job gets the fetch-model step; an unverified Model
    holds the build back (retried)."""
    from support.cluster_objects import model_obj

    model = model_obj("credit-risk-v3", phase="Verifying")
    model["metadata"]["namespace"] = "team"
    packaged = environment("pkg")
    packaged["spec"]["model"] = "credit-risk-v3"
    kube = cluster(packaged, environment("plain", created="2026-11-30T09:00:00Z"), model)
    waiting = run(kube, fake_deps(), "pkg")
    assert waiting.status["phase"] == "Resolving" and waiting.retry_delay is not None
    assert condition(waiting.status, "Resolved")["reason"] == "ModelNotReady"
    kube.mutate(("mlkube.dev/v1alpha1", "Model", "team", "credit-risk-v3"),
                lambda m: m["status"].update(phase="Ready"))  # fmt: skip
    status = run(kube, fake_deps(), "pkg").status
    plain = run(kube, fake_deps(), "plain").status
    assert status["phase"] == "Building" and status["buildKey"] != plain["buildKey"]
    job = kube.stored("batch/v1", "Job", status["build"]["job"].split("/")[1], BUILD_NAMESPACE)
    steps = [c["name"] for c in job["spec"]["template"]["spec"]["initContainers"]]
    assert "fetch-model" in steps


def test_a_package_list_the_crd_would_refuse_is_bounded_not_fatal() -> None:
    """A `name @ <long URL>` freeze line must not make the status patch fail (the object
    would stay Building for ever)."""
    from mlkube.builders.environment_status import environment_status

    long_line = "mypkg @ https://files.example/" + "x" * 400 + ".whl"
    status = environment_status(
        None, generation=1, phase="Ready", reason="Built", message="built",
        now="2026-11-30T12:00:00Z", built=True,
        facts={"packages": [long_line] + [f"p{i}==1" for i in range(3000)]},
    )  # fmt: skip
    assert len(status["packages"]) == 2048
    assert len(status["packages"][0]) == 256 and status["packages"][0].startswith("mypkg @ ")
