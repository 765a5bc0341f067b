"""A real local Kubernetes control plane for development and integration tests.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok run as separate
processes on loopback (they share global state, so they are never merged into one process).
kwok plays the kubelet so Deployments become Available and Jobs complete on fake nodes.
"""

from mlkube.devcluster.cluster import Cluster, ClusterError, build_binaries

__all__ = ["Cluster", "ClusterError", "build_binaries"]
