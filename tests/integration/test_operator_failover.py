"""Two operator replicas, one active (docs/architecture.md decision 18), as real processes on
the real API server under the chart's roles: only the Lease holder reconciles; the standby
answers its liveness probe and serves the webhooks (its audit stamps are proven by the leader,
the audit key Secret is shared) but runs no handler; a SIGKILLed leader is
replaced once its Lease runs out, a SIGTERMed one hands over at the standby's next retry. The
measured takeover times are printed (pytest -s) and bounded by the Lease timing."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlkube.builders.rbac import LEADER_LEASE, build_cluster_role_binding
from mlkube.contract import ANNOTATION_CREATED_BY, API_VERSION
from mlkube.devcluster.cluster import OPERATOR_USER
from mlkube.devcluster.procs import free_port
from mlkube.k8s import Kube
from support.operator import OPERATOR_KUBECONFIG_ENV, registered_webhooks, webhook_setup
from support.waiting import wait_for

DURATION, RENEW, RETRY = 6.0, 4.0, 0.5  # short Lease timing: the test waits one out


@dataclass
class Replica:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def health(self) -> dict[str, Any] | None:
        try:
            url = f"http://127.0.0.1:{self.port}/healthz"
            with urllib.request.urlopen(url, timeout=2) as answer:
                return json.load(answer) if answer.status == 200 else None
        except OSError:
            return None

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Fleet:
    """Operator processes with leader election on, as the chart runs them (short Lease)."""

    def __init__(self, namespace: str, tmp: Path) -> None:
        self.namespace, self.tmp = namespace, tmp
        self.replicas: dict[str, Replica] = {}

    def start(self, name: str, webhook_env: dict[str, str]) -> Replica:
        port, log = free_port(), self.tmp / f"{name}.log"
        env = {
            **os.environ,
            **webhook_env,
            "HOSTNAME": name,
            "MLKUBE_NAMESPACE": self.namespace,
            "MLKUBE_LEASE_DURATION_SECONDS": str(DURATION),
            "MLKUBE_LEASE_RENEW_SECONDS": str(RENEW),
            "MLKUBE_LEASE_RETRY_SECONDS": str(RETRY),
        }
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "mlkube", "operator", "--kubeconfig",
                 os.environ[OPERATOR_KUBECONFIG_ENV], "--namespace", self.namespace,
                 "--liveness", f"http://127.0.0.1:{port}/healthz", "--leader-election"],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        self.replicas[name] = Replica(name, process, port, log)
        return self.replicas[name]


@contextlib.contextmanager
def fleet(namespace: str, tmp: Path) -> Iterator[Fleet]:
    running = Fleet(namespace, tmp)
    try:
        yield running
    finally:
        for replica in running.replicas.values():
            if replica.process.poll() is None:
                replica.process.kill()
                replica.process.wait(timeout=10)


def lease_holder(kube: Kube, namespace: str) -> str:
    lease = kube.get("coordination.k8s.io/v1", "Lease", LEADER_LEASE, namespace) or {}
    return str((lease.get("spec") or {}).get("holderIdentity") or "").split("_")[0]


def create_model(kube: Kube, namespace: str, name: str, tmp: Path) -> None:
    artifact = tmp / f"{name}.onnx"
    artifact.write_bytes(b"bytes")
    kube.create({
        "apiVersion": API_VERSION, "kind": "Model",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"modelName": name, "version": "1", "framework": "onnx",
                 "artifact": {"uri": artifact.as_uri()}},
    })  # fmt: skip


def stamped(kube: Kube, namespace: str, tmp: Path) -> bool:
    """A dry-run create comes back stamped: the configured webhook server answers."""
    artifact = tmp / "probe.onnx"
    artifact.write_bytes(b"bytes")
    body = {"apiVersion": API_VERSION, "kind": "Model",
            "metadata": {"name": "probe", "namespace": namespace},
            "spec": {"modelName": "probe", "version": "1", "framework": "onnx",
                     "artifact": {"uri": artifact.as_uri()}}}  # fmt: skip
    path = f"/apis/{API_VERSION}/namespaces/{namespace}/models"
    dry = kube.request("POST", path, body=body, query=[("dryRun", "All")])
    return ANNOTATION_CREATED_BY in (dry["metadata"].get("annotations") or {})


def model_ready(kube: Kube, namespace: str, name: str) -> bool:
    model = kube.get(API_VERSION, "Model", name, namespace) or {}
    return bool(model.get("status", {}).get("phase") == "Ready")


def test_one_replica_reconciles_and_the_other_takes_over(
    kube: Kube, namespace: str, tmp_path: Path
) -> None:
    # The chart binds the own-namespace role (audit key, Lease) in the release namespace.
    binding = build_cluster_role_binding(
        "mlkube-operator-audit-key", "mlkube-operator-audit-key", user=OPERATOR_USER
    )
    binding["kind"] = "RoleBinding"
    binding["metadata"] = {"name": "mlkube-operator-audit-key", "namespace": namespace}
    kube.create(binding)
    # Every replica serves webhooks on its own port (same cert, same audit key Secret); the
    # configurations point at the standby's only, so its stamps must verify in the leader.
    setup = webhook_setup(tmp_path, OPERATOR_USER, namespace)

    def own_port() -> dict[str, str]:
        return {**setup.env, "MLKUBE_WEBHOOK_PORT": str(free_port())}

    with fleet(namespace, tmp_path) as operators:
        leader = operators.start("a", own_port())
        wait_for(lambda: lease_holder(kube, namespace) == "a", timeout=60, what="a leading")
        standby = operators.start("b", setup.env)
        # Both answer their liveness probe (both serve webhooks); only one says it leads.
        assert wait_for(lambda: leader.health(), timeout=60, what="leader health")["leader"]
        standby_health = wait_for(lambda: standby.health(), timeout=60, what="standby health")
        assert standby_health["leader"] is False
        assert 0 <= standby_health["apiContactAgeSeconds"] < 30

        with registered_webhooks(kube, setup.configurations):
            wait_for(lambda: stamped(kube, namespace, tmp_path), timeout=30, what="b's webhook")
            create_model(kube, namespace, "first", tmp_path)
            wait_for(lambda: model_ready(kube, namespace, "first"), timeout=60, what="first Ready")
        first = kube.get(API_VERSION, "Model", "first", namespace) or {}
        stamp = first["metadata"]["annotations"][ANNOTATION_CREATED_BY]  # the standby's webhook
        assert first["status"]["createdBy"] == stamp != "unknown"  # proven, seen by the leader
        # The leader's handlers ran for it, once; the standby's never ran at all.
        assert leader.output().count("Creation is processed") == 1, leader.output()[-3000:]
        assert "Handler '" not in standby.output(), standby.output()[-3000:]
        # Only the leader opens the notifications outbox (they share one file here).
        assert "notifications: outbox" in leader.output()
        assert "notifications: outbox" not in standby.output()
        assert "Webhook 'audit' succeeded" in standby.output()  # the configured server
        assert "Webhook '" not in leader.output()
        assert lease_holder(kube, namespace) == "a"

        # SIGKILL: no release; the standby waits the Lease out (on its own clock).
        killed = time.monotonic()
        leader.process.kill()
        leader.process.wait(timeout=10)
        create_model(kube, namespace, "second", tmp_path)
        wait_for(lambda: lease_holder(kube, namespace) == standby.name, timeout=DURATION * 3,
                 interval=0.05, what="the standby holding the Lease")  # fmt: skip
        takeover = time.monotonic() - killed
        wait_for(lambda: model_ready(kube, namespace, "second"), timeout=60, what="second Ready")
        reconciled = time.monotonic() - killed
        print(f"\nSIGKILL failover: Lease taken after {takeover:.1f}s (duration {DURATION}s, "
              f"retry {RETRY}s); new Model Ready after {reconciled:.1f}s")  # fmt: skip
        # At most one duration past the last renewal (which came up to one retry before the
        # kill), plus the standby's retry and process scheduling on a loaded machine.
        assert takeover <= DURATION + 2 * RETRY + 2.0, takeover
        # Kopf re-runs probes at most every 10 s: the JSON says so within that.
        wait_for(lambda: (standby.health() or {}).get("leader"), timeout=30, what="leader: true")

        # SIGTERM: the leader stops its handlers, releases the Lease, the next standby takes it.
        third = operators.start("c", own_port())
        wait_for(lambda: third.health(), timeout=60, what="third replica health")
        assert lease_holder(kube, namespace) == standby.name
        terminated = time.monotonic()
        standby.process.send_signal(signal.SIGTERM)
        wait_for(lambda: lease_holder(kube, namespace) == "c", timeout=DURATION * 3,
                 interval=0.05, what="the third replica holding the Lease")  # fmt: skip
        handover = time.monotonic() - terminated
        assert standby.process.wait(timeout=30) == 0, standby.output()[-3000:]
        assert "released Lease" in standby.output()
        create_model(kube, namespace, "third", tmp_path)
        wait_for(lambda: model_ready(kube, namespace, "third"), timeout=60, what="third Ready")
        print(f"SIGTERM handover: Lease taken after {handover:.1f}s")
        assert handover < DURATION, handover  # released: no waiting out the Lease
        third.process.send_signal(signal.SIGTERM)
        assert third.process.wait(timeout=30) == 0, third.output()[-3000:]


def test_a_deposed_leader_exits_at_once(kube: Kube, namespace: str, tmp_path: Path) -> None:
    """Someone else holds the Lease (a standby that took over while this leader could not
    reach the API server): the old leader must not reconcile one more pass; it exits (3)."""
    binding = build_cluster_role_binding(
        "mlkube-operator-audit-key", "mlkube-operator-audit-key", user=OPERATOR_USER
    )
    binding["kind"] = "RoleBinding"
    binding["metadata"] = {"name": "mlkube-operator-audit-key", "namespace": namespace}
    kube.create(binding)
    with fleet(namespace, tmp_path) as operators:
        leader = operators.start("a", {})
        wait_for(lambda: lease_holder(kube, namespace) == "a", timeout=60, what="a leading")
        intruder = {"spec": {"holderIdentity": "intruder_1", "leaseTransitions": 7}}
        kube.patch("coordination.k8s.io/v1", "Lease", LEADER_LEASE, intruder, namespace)
        assert leader.process.wait(timeout=RENEW * 3) == 3, leader.output()[-3000:]
        assert "lost the Lease" in leader.output()
        assert lease_holder(kube, namespace) == "intruder"  # not released: it was not its own
