"""The real node's network on this machine: a bridge we create, forwarding on that interface
only, and iptables rules that keep pod traffic here; plus the teardown that undoes all of it
and the chains the kubelet and kube-proxy add (KUBE-*), so `dev down` leaves no trace.

Never touches the global net.ipv4.ip_forward: only net.ipv4.conf.<bridge>.forwarding.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from mlkube.devcluster.realnode_config import (
    BRIDGE,
    BRIDGE_ADDRESS,
    BRIDGE_PREFIX,
    KUBELET_PORT,
    RULE_COMMENT,
    SERVICE_CIDR,
)

TABLES = ("filter", "nat", "mangle")
IPTABLES = ("iptables", "ip6tables")


class NetError(RuntimeError):
    """A network command failed."""


def _run(argv: list[str], check: bool = True) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise NetError(f"{' '.join(argv)}: {result.stderr.strip() or result.returncode}")
    return result.stdout


def _comment() -> list[str]:
    return ["-m", "comment", "--comment", RULE_COMMENT]


# (table, chain, match) of every rule we add; all carry RULE_COMMENT.
OUR_RULES: tuple[tuple[str, str, list[str]], ...] = (
    # mangle runs before kube-proxy's filter rules: nothing from the pods leaves the bridge...
    ("mangle", "FORWARD", ["-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP"]),
    # ...and nothing from elsewhere is forwarded onto it.
    ("mangle", "FORWARD", ["!", "-i", BRIDGE, "-o", BRIDGE, "-j", "DROP"]),
    # The kubelet allows anonymous requests (dev API server has no client cert): not from pods.
    ("filter", "INPUT", ["-i", BRIDGE, "-p", "tcp", "--dport", str(KUBELET_PORT), "-j", "DROP"]),
)


def bridge_exists() -> bool:
    return Path(f"/sys/class/net/{BRIDGE}").exists()


def ip_forward_enabled() -> bool:
    return Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() != "0"


def setup() -> None:
    """Create the bridge with its address, enable forwarding on it alone, add our rules."""
    if not bridge_exists():
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    addrs = _run(["ip", "-o", "-4", "addr", "show", "dev", BRIDGE])
    if f"{BRIDGE_ADDRESS}/" not in addrs:
        _run(["ip", "addr", "add", f"{BRIDGE_ADDRESS}/{BRIDGE_PREFIX}", "dev", BRIDGE])
    _run(["ip", "link", "set", BRIDGE, "up"])
    # Service IPs from this machine go to the bridge, never to the default route (kube-proxy
    # DNATs them to pods; an unknown one dies here). The route goes with the bridge.
    _run(["ip", "route", "replace", SERVICE_CIDR, "dev", BRIDGE, "src", BRIDGE_ADDRESS])
    Path(f"/proc/sys/net/ipv4/conf/{BRIDGE}/forwarding").write_text("1\n")
    for table, chain, match in OUR_RULES:
        rule = [*match[:-2], *_comment(), *match[-2:]]
        present = subprocess.run(
            ["iptables", "-t", table, "-C", chain, *rule], capture_output=True, check=False
        )
        if present.returncode != 0:
            _run(["iptables", "-t", table, "-I", chain, "1", *rule])


def teardown() -> list[str]:
    """Remove our rules, every KUBE-* chain (and the jumps into them) and the bridge.

    Best effort: returns what could not be removed instead of stopping at the first problem.
    """
    problems: list[str] = []
    for tool in IPTABLES:
        for table in TABLES:
            try:
                _clean_table(tool, table)
            except (NetError, OSError) as err:
                problems.append(str(err))
    if bridge_exists():
        try:
            _run(["ip", "link", "del", BRIDGE])
        except NetError as err:
            problems.append(str(err))
    return problems


def _clean_table(tool: str, table: str) -> None:
    rules = _run([tool, "-t", table, "-S"]).splitlines()
    ours = [
        r
        for r in rules
        if r.startswith("-A ")
        and (RULE_COMMENT in r or (not r.split()[1].startswith("KUBE-") and " -j KUBE-" in r))
    ]
    for rule in ours:
        # `-S` prints rules in a form iptables accepts back (comments in double quotes).
        argv = shlex.split(rule)
        _run([tool, "-t", table, "-D", *argv[1:]], check=False)
    chains = [r.split()[1] for r in rules if r.startswith("-N KUBE-")]
    for chain in chains:
        _run([tool, "-t", table, "-F", chain], check=False)
    for chain in chains:
        _run([tool, "-t", table, "-X", chain], check=False)


def leftovers() -> list[str]:
    """What of ours is still on the machine (for `dev status` and tests)."""
    found = []
    if bridge_exists():
        found.append(f"bridge {BRIDGE}")
    for tool in IPTABLES:
        for table in TABLES:
            out = _run([tool, "-t", table, "-S"], check=False)
            if RULE_COMMENT in out or "KUBE-" in out:
                found.append(f"{tool} -t {table}: KUBE-* chains or {RULE_COMMENT} rules")
    return found
