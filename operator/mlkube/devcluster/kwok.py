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
"""

from __future__ import annotations

from typing import Any, Final

DEFAULT_LEASE_SECONDS: Final = 40  # the kubelet's default nodeLeaseDurationSeconds


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
