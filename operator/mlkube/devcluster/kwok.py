"""How kwok keeps fake nodes and pods healthy for as long as the cluster runs (pure).

kube-controller-manager declares a node NotReady when neither its Lease nor its Ready
condition's heartbeat moved within `--node-monitor-grace-period` (50 s by default), then marks
every pod on it NotReady. kwok renews a Lease per node only when started with
`--node-lease-duration-seconds` (without it no Lease exists and the 10-minute status heartbeat
is far too slow), so the launcher always passes it, sized to the grace period like a kubelet's
(40 s lease renewed every 10 s against a 50 s grace).

A kubelet also re-reports pods Ready once its node is back; kwok's stages never do, so one
extra stage does: after a laptop sleep or a frozen kwok, pods recover instead of staying
NotReady for good. Pods annotated `kwok.x-k8s.io/status=custom` stay hands-off (tests that
drive pod status themselves).

Pod logs: the API server forwards `pods/log` to kwok (the node's kubelet endpoint), which
serves a container's log only when a kwok `Logs` object names the file (else 404). kwok runs
with `--enable-crds=Logs` and the launcher installs kwok's Logs CRD, so the dev pod executor
creates one `Logs` per pod it runs (podexec_logs), owned by the pod: `kubectl logs` and
`mlkube batch jobs logs` work as with a kubelet. Static `--config` Logs cannot do it: a file
path per pod is only known once the pod exists.
"""

from __future__ import annotations

from typing import Any, Final

DEFAULT_LEASE_SECONDS: Final = 40  # the kubelet's default nodeLeaseDurationSeconds
KWOK_API_VERSION: Final = "kwok.x-k8s.io/v1alpha1"
LOGS_CRD: Final = "logs.kwok.x-k8s.io"
ENABLED_CRDS: Final = "Logs"  # kwok's --enable-crds: Logs objects are watched, not configured


def lease_seconds(grace_period: float | None) -> int:
    """Lease duration for a node-monitor grace period: kwok renews every quarter of it, so at
    least four renewals fit in the grace period."""
    if grace_period is None:
        return DEFAULT_LEASE_SECONDS
    return max(4, min(DEFAULT_LEASE_SECONDS, int(grace_period)))


def build_pod_recover_stage() -> dict[str, Any]:
    """A running pod whose Ready condition was set False (by the node-lifecycle controller)
    turns Ready again: nothing in a kwok cluster fails a readiness probe for real."""
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": "mlkube-pod-recover"},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {
                "matchExpressions": [
                    {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                    {"key": ".status.phase", "operator": "In", "values": ["Running"]},
                    {
                        "key": '.status.conditions.[] | select( .type == "Ready" ) | .status',
                        "operator": "In",
                        "values": ["False"],
                    },
                ]
            },
            # While its node is still NotReady the node-lifecycle controller flips the pod
            # back at once; a short delay keeps that brief overlap from becoming a hot loop.
            "delay": {"durationMilliseconds": 2000},
            "next": {
                "statusTemplate": (
                    "{{ $now := Now }}\n"
                    "conditions:\n"
                    "- lastTransitionTime: {{ $now | Quote }}\n"
                    '  status: "True"\n'
                    "  type: Ready\n"
                    "- lastTransitionTime: {{ $now | Quote }}\n"
                    '  status: "True"\n'
                    "  type: ContainersReady\n"
                )
            },
        },
    }


def build_logs_crd() -> dict[str, Any]:
    """kwok's `Logs` CRD (kwok v0.8 kustomize/crd/bases/kwok.x-k8s.io_logs.yaml, spec part; the
    status kwok never writes for Logs is left open)."""
    log = {
        "type": "object",
        "properties": {
            "containers": {"type": "array", "items": {"type": "string"}},
            "follow": {"type": "boolean"},
            "logsFile": {"type": "string"},
            "previousLogsFile": {"type": "string"},
        },
    }
    schema = {
        "type": "object",
        "required": ["metadata", "spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "required": ["logs"],
                "properties": {"logs": {"type": "array", "items": log}},
            },
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": LOGS_CRD},
        "spec": {
            "group": "kwok.x-k8s.io",
            "names": {"kind": "Logs", "listKind": "LogsList", "plural": "logs", "singular": "logs"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                }
            ],
        },
    }


def build_pod_logs(pod: dict[str, Any], files: dict[str, str]) -> dict[str, Any]:
    """The `Logs` object that makes kwok serve each container's log file (CRI format) of a
    pod; owned by the pod, so it goes when the pod goes."""
    meta = pod["metadata"]
    return {
        "apiVersion": KWOK_API_VERSION,
        "kind": "Logs",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]}
            ],
        },
        "spec": {
            "logs": [
                {"containers": [name], "logsFile": path, "follow": True}
                for name, path in sorted(files.items())
            ]
        },
    }
