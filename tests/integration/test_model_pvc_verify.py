"""pvc:// artifacts are verified by a Job that mounts the claim; the operator reads the facts
from the Job pod's termination message. kwok plays the kubelet but runs no container, so the
test runs the real storage initializer locally against a folder standing for the claim and
writes its report into the pod status, as the kubelet would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from kopf.testing import KopfRunner

from mlkube.builders.model_verify import build_verification_job, verification_job_name
from mlkube.builders.operator_config import parse_operator_config
from mlkube.contract import API_VERSION, ENV_PVC_ROOT
from mlkube.k8s import Kube
from mlkube.storage import compute_digest
from support.waiting import wait_for


def bound_claim(kube: Kube, namespace: str, claim: str) -> None:
    kube.create({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"{namespace}-{claim}"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany"],
                 "storageClassName": "manual", "hostPath": {"path": "/models"},
                 "claimRef": {"namespace": namespace, "name": claim}},
    })  # fmt: skip
    kube.create({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim, "namespace": namespace},
        "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "manual",
                 "resources": {"requests": {"storage": "1Gi"}}},
    })  # fmt: skip
    wait_for(lambda: (kube.get("v1", "PersistentVolumeClaim", claim, namespace) or {})
             .get("status", {}).get("phase") == "Bound", what="PVC Bound")  # fmt: skip


def play_kubelet(kube: Kube, namespace: str, pod: dict[str, Any], report: str) -> None:
    """Write the container's termination message into the pod status."""
    statuses = pod["status"]["containerStatuses"]
    statuses[0]["state"]["terminated"]["message"] = report
    kube.patch("v1", "Pod", pod["metadata"]["name"], {"status": {"containerStatuses": statuses}},
               namespace, subresource="status")  # fmt: skip


def test_pvc_artifact_is_verified_by_a_job(
    kube: Kube, namespace: str, tmp_path: Path, running_operator: KopfRunner
) -> None:
    claim = "models"
    folder = tmp_path / claim / "credit" / "3"
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"\x08\x07" * 500)
    (folder / "labels.txt").write_text("no\nyes\n")
    bound_claim(kube, namespace, claim)
    uri = f"pvc://{claim}/credit/3"
    created = kube.create({
        "apiVersion": API_VERSION, "kind": "Model",
        "metadata": {"name": "credit-v3", "namespace": namespace},
        "spec": {"modelName": "credit", "version": "3", "framework": "onnx",
                 "artifact": {"uri": uri}},
    })  # fmt: skip

    job_name = verification_job_name("credit-v3", 1)
    job = wait_for(lambda: kube.get("batch/v1", "Job", job_name, namespace), what="verify Job")
    expected = build_verification_job(
        model="credit-v3", namespace=namespace, uid=created["metadata"]["uid"], generation=1,
        uri=uri, digest=None, config=parse_operator_config({}),
    )  # fmt: skip
    assert job["metadata"]["ownerReferences"] == expected["metadata"]["ownerReferences"]
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["volumes"][0]["persistentVolumeClaim"] == {"claimName": claim, "readOnly": True}
    assert pod_spec["containers"][0]["args"] == ["--uri", uri]
    assert pod_spec["automountServiceAccountToken"] is False
    # The handler creates the Job, then its status patch lands: the Job can be seen first.
    wait_for(lambda: (kube.get(API_VERSION, "Model", "credit-v3", namespace) or {})
             .get("status", {}).get("phase") == "Verifying", what="Model Verifying")  # fmt: skip

    def succeeded_pod() -> dict[str, Any] | None:
        pods = kube.list("v1", "Pod", namespace, label_selector=f"job-name={job_name}")
        return next((p for p in pods if p.get("status", {}).get("phase") == "Succeeded"), None)

    pod = wait_for(succeeded_pod, timeout=60, what="verification pod Succeeded")
    log = tmp_path / "termination-log"
    log.write_text("")
    run = subprocess.run(
        [sys.executable, "-m", "mlkube_serving", "storage-initializer", "--uri", uri,
         "--termination-log", str(log)],
        env={**os.environ, ENV_PVC_ROOT: str(tmp_path)}, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    play_kubelet(kube, namespace, pod, log.read_text())

    def verified() -> dict[str, Any] | None:
        obj = kube.get(API_VERSION, "Model", "credit-v3", namespace) or {}
        return obj if obj.get("status", {}).get("phase") in ("Ready", "Failed") else None

    obj = wait_for(verified, timeout=30, what="Model verified from the Job's report")
    assert obj["status"]["phase"] == "Ready", obj["status"]
    assert obj["status"]["artifact"]["digest"] == compute_digest(folder.as_uri()).digest
    assert obj["status"]["artifact"]["fileCount"] == 2
