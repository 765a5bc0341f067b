"""What a reader of artifacts may fetch: caps, local access, network and digest rules.

The CLI and the storage initializer read on behalf of the user who named the URI (their
laptop, their pod), so they use `UNRESTRICTED`. The operator reads with its own network position
and credentials on behalf of whoever wrote a Model, so it builds a restricted policy from its
configuration (`mlkube.builders.operator_config.fetch_policy`): byte, file and time caps, no
local files or loopback outside dev mode, and no link-local, metadata or cluster-internal hosts.

This module is pure apart from the clock in `Budget`; resolving host names lives in `netguard`.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from typing import Final

from mlkube.storage.errors import ArtifactLocationRefused, ArtifactTimeout, ArtifactTooLarge

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Cloud metadata services that are not link-local (AWS IPv6 IMDS, Alibaba, Oracle v2 aliases).
METADATA_ADDRESSES: Final = frozenset(
    ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
METADATA_HOSTS: Final = frozenset({"metadata", "metadata.google.internal", "instance-data"})
# Private ranges: where pods, Services and node-local services live unless configured otherwise.
DEFAULT_INTERNAL_NETWORKS: Final = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
)
# IPv6 forms that carry an IPv4 address a gateway forwards to: NAT64 (RFC 6052 well-known
# prefix; the local-use 64:ff9b:1::/48 embeds it the same way at /96) and 6to4 (RFC 3056).
NAT64_NETWORKS: Final = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
)


def embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address embeds (mapped, NAT64, 6to4), else the address itself."""
    if not isinstance(address, ipaddress.IPv6Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if any(address in network for network in NAT64_NETWORKS):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    return address


@dataclass(frozen=True)
class FetchLimits:
    """Caps on one digest computation or download (None: no cap)."""

    max_bytes: int | None = None
    max_files: int | None = None
    timeout: float | None = None  # wall-clock seconds


@dataclass(frozen=True)
class FetchPolicy:
    limits: FetchLimits = FetchLimits()
    # file://, pvc:// and loopback hosts: the reader's own machine.
    allow_local: bool = True
    # Resolve http(s) hosts and refuse link-local, metadata and internal addresses and names.
    guard_network: bool = False
    internal_networks: tuple[str, ...] = DEFAULT_INTERNAL_NETWORKS
    internal_domains: tuple[str, ...] = ("svc", "cluster.local", "internal")
    # Refuse to download bytes without a digest to verify them against.
    require_digest: bool = False
    _networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        init=False, repr=False, compare=False, default=()
    )

    def __post_init__(self) -> None:
        networks = tuple(ipaddress.ip_network(n, strict=False) for n in self.internal_networks)
        object.__setattr__(self, "_networks", networks)

    def address_problem(self, address: IPAddress) -> str | None:
        """Why `address` must not be contacted, or None."""
        address = embedded_ipv4(address)
        if any(address in network for network in self._networks):
            return "a cluster-internal or private address"  # listed ones are always refused
        if address.is_loopback:
            return None if self.allow_local else "a loopback address (allowed in dev mode only)"
        if address.is_link_local:
            return "a link-local address (cloud metadata lives there)"
        if address in METADATA_ADDRESSES:
            return "a cloud metadata address"
        if address.is_unspecified or address.is_multicast or address.is_reserved:
            return "not a unicast address"
        return None

    def host_problem(self, host: str) -> str | None:
        """Why the host name itself is refused (before resolving), or None."""
        name = host.lower().rstrip(".")
        try:
            return self.address_problem(ipaddress.ip_address(name.strip("[]")))
        except ValueError:
            pass
        if name == "localhost" or name.endswith(".localhost"):
            return None if self.allow_local else "a loopback address (allowed in dev mode only)"
        if name in METADATA_HOSTS:
            return "a cloud metadata host"
        if "." not in name:
            return "a single-label name (resolved through the cluster's search domains)"
        if any(name == d or name.endswith("." + d) for d in self.internal_domains):
            return "a cluster-internal name"
        return None

    def check_host(self, host: str, uri: str) -> None:
        if self.guard_network and (problem := self.host_problem(host)) is not None:
            raise ArtifactLocationRefused(f"refusing to fetch {uri}: {host} is {problem}")


UNRESTRICTED: Final = FetchPolicy()


class Budget:
    """Running totals of one transfer against its limits; raises when one is passed."""

    def __init__(self, limits: FetchLimits, uri: str) -> None:
        self._limits = limits
        self._uri = uri
        self._start = time.monotonic()
        self.bytes = 0
        self.files = 0

    @property
    def max_files(self) -> int | None:
        return self._limits.max_files

    def remaining(self) -> float | None:
        if self._limits.timeout is None:
            return None
        return self._limits.timeout - (time.monotonic() - self._start)

    def check_time(self) -> None:
        left = self.remaining()
        if left is not None and left <= 0:
            raise ArtifactTimeout(
                f"reading {self._uri} took longer than {self._limits.timeout:g}s "
                f"({self.files} files, {self.bytes} bytes so far)"
            )

    def check_count(self, count: int) -> None:
        """Before reading: the listing alone may already be too many files."""
        cap = self._limits.max_files
        if cap is not None and count > cap:
            raise ArtifactTooLarge(f"{self._uri} holds {count} files, more than the cap of {cap}")

    def check_size(self, size: int) -> None:
        """Before reading: the sizes a listing reports may already exceed the byte cap."""
        cap = self._limits.max_bytes
        if cap is not None and size > cap:
            raise ArtifactTooLarge(f"{self._uri} holds {size} bytes, more than the cap of {cap}")

    def add_file(self) -> None:
        self.files += 1
        self.check_count(self.files)
        self.check_time()

    def add_bytes(self, count: int) -> None:
        self.bytes += count
        cap = self._limits.max_bytes
        if cap is not None and self.bytes > cap:
            raise ArtifactTooLarge(
                f"{self._uri} is larger than the cap of {cap} bytes (stopped reading)"
            )
        self.check_time()
