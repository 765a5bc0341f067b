"""Is the traffic split applied? Only when every router replica serves the config we wrote.

Writing the ConfigMap is not applying it: the kubelet swaps the mounted file up to a minute
later and each router process reloads on its own. The router answers the sha256 of the file
it loaded on `GET /-/config`; the builders hash the ConfigMap text the same way
(`builders.endpoint_router.router_config_hash`). This decides from both, without I/O.
"""

from __future__ import annotations

from collections.abc import Iterable


def traffic_applied(expected_hash: str, observed_hashes: Iterable[str | None]) -> bool:
    """True when at least one router replica was observed and all of them serve `expected_hash`.

    An observation is None when a replica could not be asked or has no config loaded; that
    replica may still route by an older split, so the new one is not applied yet.
    """
    observed = list(observed_hashes)
    return bool(observed) and all(h == expected_hash for h in observed)
