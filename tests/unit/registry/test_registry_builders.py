from __future__ import annotations

import json

from mlkube.builders.model_audit import build_audit_status, changed_paths
from mlkube.builders.model_verify import (
    build_verification_job,
    claim_of,
    job_outcome,
    termination_message,
    verification_from_job,
)
from mlkube.builders.operator_config import parse_operator_config
from mlkube.contract import ANNOTATION_CREATED_BY, ANNOTATION_LAST_MODIFIED_BY
from mlkube.reconcile.admission import referencing_endpoints

DIGEST = "sha256:" + "b" * 64


def test_referencing_endpoints_are_sorted_and_exact() -> None:
    eps = [
        {"metadata": {"name": "b"}, "spec": {"deployments": [{"model": "m1"}]}},
        {"metadata": {"name": "a"}, "spec": {"deployments": [{"model": "x"}, {"model": "m1"}]}},
        {"metadata": {"name": "c"}, "spec": {"deployments": [{"model": "m10"}]}},
        {"metadata": {"name": "d"}, "spec": {}},
    ]
    assert referencing_endpoints(eps, "m1") == ["a", "b"]


def test_history_keeps_the_newest_entries_and_replaces_same_generation() -> None:
    history = [{"user": "u", "time": "t", "generation": g, "changes": ["spec"]}
               for g in range(1, 11)]  # fmt: skip
    out = build_audit_status(
        annotations={ANNOTATION_CREATED_BY: "alice", ANNOTATION_LAST_MODIFIED_BY: "bob"},
        history=history, generation=11, changes=["spec.description"], now="now",
    )  # fmt: skip
    assert [h["generation"] for h in out["history"]] == list(range(2, 12))
    assert out["history"][-1] == {"user": "bob", "time": "now", "generation": 11,
                                  "changes": ["spec.description"]}  # fmt: skip
    again = build_audit_status(annotations={}, history=out["history"], generation=11,
                               changes=["x"], now="later")  # fmt: skip
    assert [h["generation"] for h in again["history"]].count(11) == 1
    assert again["createdBy"] == "unknown"


def test_changed_paths_from_kopf_diff() -> None:
    diff = [("change", ("description",), "a", "b"), ("add", ("properties", "team"), None, "x"),
            ("add", ("properties", "team"), None, "x"), ("change", (), {}, {})]  # fmt: skip
    assert changed_paths(diff) == ["spec.description", "spec.properties.team", "spec"]


def test_verification_job_mounts_the_claim_read_only_and_is_restricted() -> None:
    job = build_verification_job(model="m-v1", namespace="ns", uid="u1", generation=2,
                                 uri="pvc://data/models/m", digest=DIGEST,
                                 config=parse_operator_config({}))  # fmt: skip
    assert claim_of("pvc://data/models/m") == "data"
    assert job["metadata"]["name"] == "m-v1-verify-g2"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "Model"
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["--uri", "pvc://data/models/m", "--digest", DIGEST]
    assert {"name": "artifact", "mountPath": "/mnt/pvc/data", "readOnly": True} in container[
        "volumeMounts"
    ]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 0


def test_job_results_are_read_from_termination_messages() -> None:
    done = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert job_outcome(done) == "Complete"
    assert job_outcome({"status": {}}) is None
    facts = json.dumps({"uri": "pvc://x", "digest": DIGEST, "size": 5, "fileCount": 1})
    pod = {"status": {"containerStatuses": [{"state": {"terminated": {"message": facts}}}]}}
    ok = verification_from_job("Complete", termination_message(pod))
    assert ok is not None and (ok.digest, ok.size, ok.file_count) == (DIGEST, 5, 1)
    assert verification_from_job("Complete", None) is None
    failed = verification_from_job("Failed", "Traceback\nerror: digest mismatch for pvc://x")
    assert failed is not None and failed.reason == "DigestMismatch"
    garbage = verification_from_job("Complete", "not json")
    assert garbage is not None and garbage.error is not None


def test_file_artifacts_are_refused_unless_the_operator_is_a_dev_one() -> None:
    from mlkube.builders.operator_config import artifact_scheme_problem

    prod = parse_operator_config({})
    dev = parse_operator_config({"MLKUBE_ALLOW_FILE_ARTIFACTS": "true"})
    problem = artifact_scheme_problem("file:///etc/passwd", prod)
    assert problem is not None and "MLKUBE_ALLOW_FILE_ARTIFACTS=true" in problem
    assert artifact_scheme_problem("file:///tmp/m", dev) is None
    assert artifact_scheme_problem("s3://bucket/m", prod) is None
