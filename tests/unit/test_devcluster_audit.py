"""The audit log reader counts requests per verb and resource and tells writes apart."""

from __future__ import annotations

import json
from pathlib import Path

from mlkube.devcluster.audit import AuditLog, by_verb_and_resource, parse_line, writes
from mlkube.devcluster.cluster import ScaleOptions, build_audit_policy, build_fake_node


def event(verb: str, resource: str, sub: str = "", user: str = "op") -> str:
    ref = {"resource": resource, "namespace": "ns", "name": "x"}
    if sub:
        ref["subresource"] = sub
    return json.dumps(
        {
            "verb": verb,
            "user": {"username": user},
            "objectRef": ref,
            "responseStatus": {"code": 200},
            "stageTimestamp": "2026-11-30T00:00:00.000001Z",
        }
    )


def test_parse_line_names_subresources_and_skips_garbage() -> None:
    request = parse_line(event("patch", "onlineendpoints", "status"))
    assert request is not None
    assert (request.verb, request.resource, request.is_write) == (
        "patch",
        "onlineendpoints/status",
        True,
    )
    assert parse_line("not json") is None
    assert parse_line("{}") is None


def test_since_mark_reads_only_new_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_text(event("get", "models") + "\n")
    log = AuditLog(path)
    log.mark()
    with path.open("a") as f:
        f.write(event("list", "deployments") + "\n")
        f.write(event("create", "configmaps", user="admin") + "\n")
        f.write(event("patch", "deployments")[:20])  # half-written: not counted yet
    got = log.since_mark()
    assert [(r.verb, r.resource) for r in got] == [
        ("list", "deployments"),
        ("create", "configmaps"),
    ]
    mine = log.since_mark(user="op")
    assert by_verb_and_resource(mine) == {("list", "deployments"): 1}
    assert writes(got)[0].user == "admin"


def test_audit_policy_records_only_the_named_users() -> None:
    policy = build_audit_policy(("op",))
    assert policy["rules"][0] == {"level": "Metadata", "users": ["op"]}
    assert policy["rules"][-1] == {"level": "None"}
    assert ScaleOptions().audit_users == ()


def test_fake_node_room_grows_with_pods() -> None:
    small = build_fake_node("a")["status"]["capacity"]
    big = build_fake_node("b", pods=4000)["status"]["capacity"]
    assert small == {"cpu": "32", "memory": "256Gi", "pods": "110"}
    assert big == {"cpu": "1000", "memory": "4000Gi", "pods": "4000"}
