"""The PipelineRun controller against the in-memory API and a real file:// artifact store:
snapshot, one Job per attempt in DAG order, outputs and cache entries, cache hits and misses
with reasons, retries, failFast, cancel, adoption after a lost status write, single flight."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from mlkube.builders.operator_config import OperatorConfig
from support.fake_kube import FakeKube
from support.pipelines import (
    API,
    NS,
    add_run,
    cluster,
    config,
    fail,
    job,
    jobs,
    manifest,
    reconcile,
    status,
    step,
    step_status,
    succeed,
    three_steps,
)


def run_to_end(kube: FakeKube, cfg: OperatorConfig, run: str) -> None:
    """Finish every Job the controller starts until the run ends."""
    for _ in range(10):
        reconcile(kube, cfg, run)
        if status(kube, run).get("phase") in ("Succeeded", "Failed", "Cancelled"):
            return
        for name in jobs(kube):
            if not (job(kube, name).get("status") or {}).get("conditions"):
                succeed(kube, name)
    raise AssertionError(status(kube, run))


def test_the_first_pass_snapshots_the_pipeline_and_starts_only_the_first_step(
    tmp_path: Path,
) -> None:
    kube, cfg = cluster(three_steps()), config(tmp_path)
    add_run(kube, "r1")
    reconcile(kube, cfg, "r1")
    snap = kube.stored("v1", "ConfigMap", "r1-spec", NS)
    assert snap["immutable"] is True
    assert snap["metadata"]["ownerReferences"][0]["kind"] == "PipelineRun"
    assert json.loads(snap["data"]["pipeline.json"])["steps"][0]["name"] == "prep"
    st = status(kube, "r1")
    assert st["phase"] == "Running" and st["pipelineDigest"].startswith("sha256:")
    assert jobs(kube) == ["r1-prep-a1"]
    assert step_status(kube, "r1", "prep")["phase"] == "Running"
    assert step_status(kube, "r1", "train")["phase"] == "Pending"
    # Level-based and idempotent: another pass neither creates nor writes anything.
    writes = len(kube.writes)
    reconcile(kube, cfg, "r1")
    assert len(kube.writes) == writes


def test_editing_the_pipeline_mid_run_does_not_change_the_run(tmp_path: Path) -> None:
    kube, cfg = cluster(three_steps()), config(tmp_path)
    add_run(kube, "r1")
    reconcile(kube, cfg, "r1")
    kube.mutate((API, "Pipeline", NS, "p"), lambda o: o["spec"].update(steps=[step("other")]))
    run_to_end(kube, cfg, "r1")
    assert [s["name"] for s in status(kube, "r1")["steps"]] == ["prep", "train", "score"]


def test_steps_run_in_dag_order_and_pass_outputs_with_digests(tmp_path: Path) -> None:
    kube, cfg = cluster(three_steps()), config(tmp_path)
    add_run(kube, "r1")
    reconcile(kube, cfg, "r1")
    prep = succeed(kube, "r1-prep-a1")
    reconcile(kube, cfg, "r1")
    assert jobs(kube) == ["r1-prep-a1", "r1-train-a1"]
    data = manifest(kube, "r1-train-a1")["inputs"][0]
    assert data == {"name": "data", "uri": prep["outputs"][0]["uri"],
                    "digest": prep["outputs"][0]["digest"]}  # fmt: skip
    succeed(kube, "r1-train-a1", metrics={"auc": 0.93})
    run_to_end(kube, cfg, "r1")
    st = status(kube, "r1")
    assert st["phase"] == "Succeeded", st
    assert st["progress"] == "3/3"
    train = step_status(kube, "r1", "train")
    assert train["metrics"] == {"auc": 0.93}
    assert train["outputs"][0]["digest"].startswith("sha256:")
    assert train["cache"] == {"hit": False, "key": train["cache"]["key"], "reason": "no entry"}
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "Ready": "True",
        "Reconciling": "False",
        "Stalled": "False",
    }
    entries = list((tmp_path / "store" / NS / "_mlkube" / "pipeline-cache").glob("*.json"))
    assert len(entries) == 3


def test_a_second_run_is_served_from_the_cache_without_jobs(tmp_path: Path) -> None:
    kube, cfg = cluster(three_steps()), config(tmp_path)
    add_run(kube, "r1")
    run_to_end(kube, cfg, "r1")
    before = jobs(kube)
    add_run(kube, "r2")
    reconcile(kube, cfg, "r2")
    assert jobs(kube) == before
    st = status(kube, "r2")
    assert st["phase"] == "Succeeded", st
    for s in st["steps"]:
        assert s["cache"]["hit"] is True and s["cache"]["reason"] == "hit"
        assert s["cache"]["sourceRun"] == "r1"
    assert (
        step_status(kube, "r2", "train")["outputs"] == step_status(kube, "r1", "train")["outputs"]
    )


def test_a_deleted_cached_output_is_a_miss_that_says_why(tmp_path: Path) -> None:
    kube, cfg = cluster(three_steps()), config(tmp_path)
    add_run(kube, "r1")
    run_to_end(kube, cfg, "r1")
    uri = step_status(kube, "r1", "prep")["outputs"][0]["uri"]
    shutil.rmtree(uri.removeprefix("file://"))
    add_run(kube, "r2")
    reconcile(kube, cfg, "r2")
    prep = step_status(kube, "r2", "prep")
    assert prep["phase"] == "Running" and prep["cache"]["reason"] == "output out missing"
    assert "r2-prep-a1" in jobs(kube)


def test_changed_output_bytes_are_a_miss_and_force_rerun_never_hits(tmp_path: Path) -> None:
    kube, cfg = cluster(three_steps()), config(tmp_path)
    add_run(kube, "r1")
    run_to_end(kube, cfg, "r1")
    uri = step_status(kube, "r1", "prep")["outputs"][0]["uri"]
    (Path(uri.removeprefix("file://")) / "part.txt").write_bytes(b"tampered")
    add_run(kube, "r2")
    reconcile(kube, cfg, "r2")
    assert step_status(kube, "r2", "prep")["cache"]["reason"] == "output out digest changed"
    add_run(kube, "r3", cachePolicy="ForceRerun")
    reconcile(kube, cfg, "r3")
    assert step_status(kube, "r3", "prep")["cache"]["reason"] == "ForceRerun"


def test_an_unpinned_image_is_uncacheable(tmp_path: Path) -> None:
    kube, cfg = cluster([step("a", image="trainer:latest")]), config(tmp_path)
    add_run(kube, "r1")
    reconcile(kube, cfg, "r1")
    cache = step_status(kube, "r1", "a")["cache"]
    assert cache["hit"] is False and "key" not in cache
    assert cache["reason"].startswith("uncacheable: image trainer:latest is not pinned")
    assert "mlkube.dev/cache-key" not in job(kube, "r1-a-a1")["metadata"]["labels"]


def test_a_failing_step_retries_after_backoff_then_fails_the_run_and_cancels_siblings(
    tmp_path: Path,
) -> None:
    flaky = step("flaky", retry={"limit": 1, "backoff": {"duration": "30s"}})
    kube, cfg = cluster([flaky, step("slow")]), config(tmp_path)
    add_run(kube, "r1")
    reconcile(kube, cfg, "r1")
    assert jobs(kube) == ["r1-flaky-a1", "r1-slow-a1"]
    fail(kube, "r1-flaky-a1", "ValueError: bad row")
    out = reconcile(kube, cfg, "r1")
    flaky_st = step_status(kube, "r1", "flaky")
    assert flaky_st["phase"] == "Pending" and flaky_st["nextAttemptTime"] == "2026-01-01T12:00:30Z"
    assert "ValueError: bad row" in flaky_st["message"]
    assert ("Warning", "StepRetrying") in [(t, r) for t, r, _ in out.events]
    assert out.requeue_after == 30
    reconcile(kube, cfg, "r1", minutes=0.25)
    assert "r1-flaky-a2" not in jobs(kube)  # the backoff has not passed
    reconcile(kube, cfg, "r1", minutes=1)
    assert "r1-flaky-a2" in jobs(kube)
    assert step_status(kube, "r1", "flaky")["attempts"] == 2
    fail(kube, "r1-flaky-a2")
    out = reconcile(kube, cfg, "r1", minutes=2)
    st = status(kube, "r1")
    assert st["phase"] == "Failed" and "step flaky failed" in st["message"]
    assert step_status(kube, "r1", "slow")["phase"] == "Cancelled"
    assert "r1-slow-a1" not in jobs(kube)  # failFast deleted the running sibling
    reasons = [r for _, r, _ in out.events]
    assert "StepFailed" in reasons and "RunFailed" in reasons


def test_continue_on_failure_keeps_independent_branches_going(tmp_path: Path) -> None:
    steps = [step("bad", continueOnFailure=True),
             step("after", inputs=[{"name": "x", "fromStep": {"step": "bad", "output": "out"}}]),
             step("good")]  # fmt: skip
    kube, cfg = cluster(steps, failFast=False), config(tmp_path)
    add_run(kube, "r1")
    reconcile(kube, cfg, "r1")
    fail(kube, "r1-bad-a1")
    succeed(kube, "r1-good-a1")
    reconcile(kube, cfg, "r1")
    st = status(kube, "r1")
    assert step_status(kube, "r1", "after")["phase"] == "Skipped"
    assert st["phase"] == "Succeeded", st


def test_cancel_deletes_running_jobs_and_ends_the_run_cancelled(tmp_path: Path) -> None:
    kube, cfg = cluster(three_steps()), config(tmp_path)
    add_run(kube, "r1")
    reconcile(kube, cfg, "r1")
    kube.mutate((API, "PipelineRun", NS, "r1"), lambda o: o["spec"].update(cancel=True))
    out = reconcile(kube, cfg, "r1")
    assert jobs(kube) == []
    st = status(kube, "r1")
    assert st["phase"] == "Cancelled"
    assert {s["phase"] for s in st["steps"]} == {"Cancelled"}
    assert "RunCancelled" in [r for _, r, _ in out.events]


def test_a_lost_status_write_adopts_the_existing_job(tmp_path: Path) -> None:
    kube, cfg = cluster(three_steps()), config(tmp_path)
    add_run(kube, "r1")
    reconcile(kube, cfg, "r1")
    # The operator died after creating the Job and before its status write landed.
    kube.mutate((API, "PipelineRun", NS, "r1"), lambda o: o.pop("status"))
    reconcile(kube, cfg, "r1")
    assert jobs(kube) == ["r1-prep-a1"]
    assert step_status(kube, "r1", "prep")["phase"] == "Running"


def test_an_identical_step_running_in_another_run_makes_this_one_wait(tmp_path: Path) -> None:
    kube, cfg = cluster(three_steps()), config(tmp_path)
    add_run(kube, "r1")
    add_run(kube, "r2")
    reconcile(kube, cfg, "r1")
    reconcile(kube, cfg, "r2")
    assert jobs(kube) == ["r1-prep-a1"]
    prep = step_status(kube, "r2", "prep")
    assert prep["phase"] == "Waiting" and "r1" in prep["message"]
    succeed(kube, "r1-prep-a1")
    reconcile(kube, cfg, "r1")
    reconcile(kube, cfg, "r2")
    prep = step_status(kube, "r2", "prep")
    assert prep["phase"] == "Succeeded" and prep["cache"]["hit"] is True


def test_no_artifact_store_fails_the_run_and_says_which_settings(tmp_path: Path) -> None:
    kube = cluster(three_steps())
    add_run(kube, "r1")
    out = reconcile(kube, OperatorConfig(allow_file_artifacts=True), "r1")
    st = status(kube, "r1")
    assert st["phase"] == "Failed"
    assert "MLKUBE_ARTIFACT_STORE" in st["message"] and "artifactStore" in st["message"]
    assert [r for _, r, _ in out.events] == ["RunFailed"]
    assert jobs(kube) == []


def test_a_missing_pipeline_or_bad_parameters_fail_the_run(tmp_path: Path) -> None:
    kube, cfg = (
        cluster(three_steps(), parameters=[{"name": "lr", "type": "number"}]),
        config(tmp_path),
    )
    add_run(kube, "r1", parameters={"lr": "fast"})
    reconcile(kube, cfg, "r1")
    assert status(kube, "r1")["phase"] == "Failed"
    assert "lr" in status(kube, "r1")["message"]
    kube.put({"apiVersion": API, "kind": "PipelineRun", "metadata": {"name": "r2", "namespace": NS},
              "spec": {"pipeline": "nope"}})  # fmt: skip
    reconcile(kube, cfg, "r2")
    assert "Pipeline nope does not exist" in status(kube, "r2")["message"]


def test_parameters_reach_the_rendered_args_and_the_key(tmp_path: Path) -> None:
    one = step("a", args=["--lr", "{{parameters.lr}}", "--out", "{{outputs.out}}"])
    kube, cfg = (
        cluster([one], parameters=[{"name": "lr", "type": "number", "default": "0.1"}]),
        (config(tmp_path)),
    )
    add_run(kube, "r1")
    add_run(kube, "r2", parameters={"lr": "0.2"})
    reconcile(kube, cfg, "r1")
    reconcile(kube, cfg, "r2")
    main = job(kube, "r1-a-a1")["spec"]["template"]["spec"]["containers"][0]
    assert main["command"][-4:] == ["--lr", "0.1", "--out", "/mlkube/outputs/out"]
    assert status(kube, "r1")["parameters"] == {"lr": "0.1"}
    keys = {step_status(kube, r, "a")["cache"]["key"] for r in ("r1", "r2")}
    assert len(keys) == 2  # different values, different keys: r2 does not wait for r1
    assert "r2-a-a1" in jobs(kube)


def test_fail_fast_leaves_a_job_the_job_controller_is_already_failing(tmp_path: Path) -> None:
    """FailureTarget (Kubernetes ≥ 1.31: Failed follows once the pods are gone) is an end:
    the attempt's Job stays, visible, and only the sibling's running Job is deleted."""
    kube, cfg = cluster([step("bad"), step("slow")]), config(tmp_path)
    add_run(kube, "r1")
    reconcile(kube, cfg, "r1")

    def failing(obj: dict[str, Any]) -> None:
        obj["status"] = {"conditions": [{"type": "FailureTarget", "status": "True"}]}

    kube.mutate(("batch/v1", "Job", NS, "r1-bad-a1"), failing)
    reconcile(kube, cfg, "r1")
    assert jobs(kube) == ["r1-bad-a1"]
    assert status(kube, "r1")["phase"] == "Failed"


def test_a_false_when_skips_the_step_and_a_step_ordered_after_it_still_runs(
    tmp_path: Path,
) -> None:
    steps = [
        step("gate", when="parameters.deploy == true"),
        step("after", dependsOn=["gate"]),
        step("typed", when="parameters.deploy == false && parameters.n > 2"),
    ]
    params = [{"name": "deploy", "type": "boolean", "default": "false"},
              {"name": "n", "type": "integer", "default": "3"}]  # fmt: skip
    kube, cfg = cluster(steps, parameters=params), config(tmp_path)
    add_run(kube, "r1")
    reconcile(kube, cfg, "r1")
    gate = step_status(kube, "r1", "gate")
    assert gate["phase"] == "Skipped" and "parameters.deploy == true" in gate["message"]
    assert sorted(jobs(kube)) == ["r1-after-a1", "r1-typed-a1"]  # typed values: n > 2 holds


def test_resume_from_reuses_succeeded_steps_and_reruns_the_named_ones(tmp_path: Path) -> None:
    kube, cfg = cluster(three_steps()), config(tmp_path)
    add_run(kube, "r1")
    run_to_end(kube, cfg, "r1")
    add_run(kube, "again", resumeFrom="r1", rerunSteps=["train"])
    reconcile(kube, cfg, "again")
    prep = step_status(kube, "again", "prep")
    assert prep["phase"] == "Succeeded" and prep["cache"]["reason"] == "hit (resumeFrom)"
    assert prep["cache"]["sourceRun"] == "r1"
    train = step_status(kube, "again", "train")
    assert train["phase"] == "Running" and train["cache"]["reason"] == "rerunSteps"
    assert "again-train-a1" in jobs(kube)
    add_run(kube, "bad", resumeFrom="nope")
    reconcile(kube, cfg, "bad")
    assert status(kube, "bad")["phase"] == "Failed"
    assert "PipelineRun nope does not exist" in status(kube, "bad")["message"]


def test_an_attempt_whose_main_never_ran_fails_instead_of_waiting_for_ever(
    tmp_path: Path,
) -> None:
    kube, cfg = cluster([step("a")]), config(tmp_path)
    add_run(kube, "r1")
    reconcile(kube, cfg, "r1")
    kube.put({"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "r1-a-a1-x", "namespace": NS, "labels": {"job-name": "r1-a-a1"}},
              "status": {"containerStatuses": [
                  {"name": "main", "state": {"terminated": {
                      "exitCode": 127, "reason": "StartError", "finishedAt": "2026-01-01T12:00:00Z",
                      "message": "exec: /bin/sh: not found"}}},
                  {"name": "outputs", "state": {"running": {}}}]}})  # fmt: skip
    reconcile(kube, cfg, "r1", minutes=0.1)
    assert step_status(kube, "r1", "a")["phase"] == "Running"  # not yet: outputs may still end
    reconcile(kube, cfg, "r1", minutes=1)
    st = status(kube, "r1")
    assert st["phase"] == "Failed" and "/bin/sh: not found" in st["message"], st
    assert jobs(kube) == []


def test_a_consumer_of_a_when_skipped_step_is_skipped_too(tmp_path: Path) -> None:
    steps = [
        step("gate", when="false"),
        step("uses", inputs=[{"name": "x", "fromStep": {"step": "gate", "output": "out"}}]),
        step("last", dependsOn=["uses"]),
    ]
    kube, cfg = cluster(steps), config(tmp_path)
    add_run(kube, "r1")
    reconcile(kube, cfg, "r1")
    uses = step_status(kube, "r1", "uses")
    assert uses["phase"] == "Skipped" and "needs outputs of step gate" in uses["message"]
    assert jobs(kube) == ["r1-last-a1"]  # ordered after a benign skip: it runs


def test_parameter_values_reach_the_step_unchanged_by_kubelet_expansion(tmp_path: Path) -> None:
    # The kubelet turns `$$` into `$` and expands `$(VAR)` in command, args and env values; a
    # parameter value must reach the step as given, the user's own template text as written.
    from mlkube.devcluster.podexec_command import expand

    value = "p$$q$(MLKUBE_INPUTS)r"
    one = step("a", args=["--x", "{{parameters.x}}", "$(MLKUBE_OUTPUTS)"])
    kube, cfg = cluster([one], parameters=[{"name": "x", "default": value}]), config(tmp_path)
    add_run(kube, "r1")
    reconcile(kube, cfg, "r1")
    main = job(kube, "r1-a-a1")["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for var in main["env"]:
        if "value" in var:
            env[var["name"]] = expand(var["value"], env)
    assert env["MLKUBE_PARAM_X"] == value
    assert [expand(a, env) for a in main["command"][-3:]] == ["--x", value, "/mlkube/outputs"]


def test_two_runs_reaching_an_identical_step_at_once_create_one_job(tmp_path: Path) -> None:
    # The handlers reconcile different runs in parallel threads: the single-flight check
    # (list Jobs by cache key) and the create must be one step per key, or both runs miss.
    import contextlib
    import threading

    kube, cfg = cluster(three_steps()), config(tmp_path)
    add_run(kube, "r1")
    add_run(kube, "r2")
    both_listed = threading.Barrier(2, timeout=1.0)
    plain_list = kube.list

    def racing_list(api_version: str, kind: str, *args: Any, **kw: Any) -> list[dict[str, Any]]:
        found = plain_list(api_version, kind, *args, **kw)
        if kind == "Job" and "cache-key" in str(kw.get("label_selector") or args[1:]):
            # The widest window: each run has listed before either creates (the barrier
            # breaks after its timeout when only one run can get here).
            with contextlib.suppress(threading.BrokenBarrierError):
                both_listed.wait()
        return found

    kube.list = racing_list  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def go(run: str) -> None:
        try:
            reconcile(kube, cfg, run)
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=go, args=(r,)) for r in ("r1", "r2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    assert len([j for j in jobs(kube) if "prep" in j]) == 1, jobs(kube)
    phases = sorted(step_status(kube, r, "prep")["phase"] for r in ("r1", "r2"))
    assert phases == ["Running", "Waiting"]


def test_a_completed_job_its_run_has_not_read_yet_still_makes_the_other_run_wait(
    tmp_path: Path,
) -> None:
    # Between the Job completing and its run recording the cache entry, the identical step of
    # another run must not miss the cache and run the step a second time.
    kube, cfg = cluster(three_steps()), config(tmp_path)
    add_run(kube, "r1")
    add_run(kube, "r2")
    reconcile(kube, cfg, "r1")
    reconcile(kube, cfg, "r2")
    succeed(kube, "r1-prep-a1")
    reconcile(kube, cfg, "r2")  # before r1 has seen its Job complete
    assert jobs(kube) == ["r1-prep-a1"]
    assert step_status(kube, "r2", "prep")["phase"] == "Waiting"
    reconcile(kube, cfg, "r1")
    reconcile(kube, cfg, "r2")
    prep = step_status(kube, "r2", "prep")
    assert prep["phase"] == "Succeeded" and prep["cache"]["hit"] is True


def test_a_pipeline_too_large_to_snapshot_fails_the_run_with_a_message(tmp_path: Path) -> None:
    # 100 steps of 128 args of 4 KiB are valid; the snapshot ConfigMap cannot hold them (the
    # API server's 1 MiB limit): the run must fail saying so, not retry the create for ever.
    big = [step(f"s{i}", args=["x" * 4096] * 128) for i in range(3)]
    kube, cfg = cluster(big), config(tmp_path)
    add_run(kube, "r1")
    reconcile(kube, cfg, "r1")
    assert status(kube, "r1")["phase"] == "Failed"
    assert "ConfigMap, which holds at most 1048576" in status(kube, "r1")["message"]
    assert kube.get("v1", "ConfigMap", "r1-spec", NS) is None and jobs(kube) == []


def test_a_cache_hit_records_the_image_digest_lineage_names(tmp_path: Path) -> None:
    # A tag resolved through MLKUBE_IMAGE_DIGESTS: after a run of its own a step records the
    # kubelet's image id; served from the cache it must still say which image made its outputs
    # (registerModel's lineage pins the image with it), not leave the tag unpinned.
    import dataclasses

    digest = "sha256:" + "e" * 64  # what the fake kubelet reports main ran
    tagged = [{**s, "image": "trainer:1"} for s in three_steps()]
    kube = cluster(tagged)
    cfg = dataclasses.replace(
        config(tmp_path), image_digests=(("docker.io/library/trainer:1", digest),)
    )
    add_run(kube, "r1")
    run_to_end(kube, cfg, "r1")
    add_run(kube, "r2")
    reconcile(kube, cfg, "r2")
    train = step_status(kube, "r2", "train")
    assert train["cache"]["hit"] is True
    assert train.get("imageDigest") == digest


def test_a_retry_whose_backoff_passed_before_the_failure_was_seen_is_announced(
    tmp_path: Path,
) -> None:
    # The failed Job is first seen after its backoff (a 1 s backoff on a busy operator, or an
    # operator restart): attempt 2 starts at once, and the retry with its cause is an Event.
    flaky = step("flaky", retry={"limit": 1, "backoff": {"duration": "1s"}})
    kube, cfg = cluster([flaky]), config(tmp_path)
    add_run(kube, "r1")
    reconcile(kube, cfg, "r1")
    fail(kube, "r1-flaky-a1", "ValueError: bad row 7")

    def ended_at_start(obj: dict[str, Any]) -> None:
        obj["status"]["conditions"][0]["lastTransitionTime"] = "2026-01-01T12:00:00Z"

    kube.mutate(("batch/v1", "Job", NS, "r1-flaky-a1"), ended_at_start)
    out = reconcile(kube, cfg, "r1", minutes=1)
    assert "r1-flaky-a2" in jobs(kube)
    retries = [m for t, r, m in out.events if r == "StepRetrying"]
    assert len(retries) == 1 and "attempt 1 failed" in retries[0], out.events
    assert "bad row 7" in retries[0]


def test_outputs_of_an_image_other_than_the_keys_are_not_cached(tmp_path: Path) -> None:
    # MLKUBE_IMAGE_DIGESTS says trainer:1 is a…a, the kubelet says main ran e…e (the tag was
    # rebuilt since): caching those outputs under the a…a key would hand them to every later
    # run of a…a (kubeflow/pipelines#13862). The step succeeds, says why, and caches nothing.
    import dataclasses

    stale = "sha256:" + "a" * 64
    tagged = [{**s, "image": "trainer:1"} for s in three_steps()]
    kube = cluster(tagged)
    cfg = dataclasses.replace(
        config(tmp_path), image_digests=(("docker.io/library/trainer:1", stale),)
    )
    add_run(kube, "r1")
    run_to_end(kube, cfg, "r1")
    train = step_status(kube, "r1", "train")
    assert train["phase"] == "Succeeded"
    assert "not cached: main ran sha256:" + "e" * 64 in train["cache"]["reason"]
    assert train["imageDigest"].endswith("@sha256:" + "e" * 64)
    add_run(kube, "r2")
    reconcile(kube, cfg, "r2")
    # Nothing was cached, so the next run runs its first step again instead of a hit.
    again = step_status(kube, "r2", "prep")
    assert again.get("cache", {}).get("hit") is not True, again
    assert "r2-prep-a1" in jobs(kube)
