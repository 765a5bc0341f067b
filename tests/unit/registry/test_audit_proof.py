"""Audit stamps and their proofs: the webhook's side (audit_annotations) and the operator's
(trusted_stamps), with the API server's part (creationTimestamp, generation) played by hand."""

from __future__ import annotations

import datetime
from typing import Any

from mlkube.contract import (
    ANNOTATION_CREATED_BY,
    ANNOTATION_CREATED_BY_PROOF,
    ANNOTATION_LAST_MODIFIED_BY,
    ANNOTATION_LAST_MODIFIED_BY_PROOF,
)
from mlkube.reconcile.admission import audit_annotations
from mlkube.reconcile.audit_proof import trusted_stamps, with_trusted_stamps

KEY = b"k" * 32
T0 = 1_800_000_000
CREATED, MODIFIED = ANNOTATION_CREATED_BY, ANNOTATION_LAST_MODIFIED_BY


def stamp(t: int) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def create(user: str, *, name: str = "m", annotations: dict[str, str] | None = None,
           at: int = T0, key: bytes = KEY) -> dict[str, Any]:  # fmt: skip
    """A CREATE admitted by the webhook, then persisted as the API server does."""
    new = {"metadata": {"name": name, "namespace": "team",
                        "annotations": dict(annotations or {})}, "spec": {"a": 1}}  # fmt: skip
    stamps = audit_annotations(operation="CREATE", username=user, operator_username="op",
                               old=None, new=new, key=key, now=at)  # fmt: skip
    new["metadata"]["annotations"].update(stamps)
    new["metadata"].update(creationTimestamp=stamp(at + 1), generation=1)
    return new


def update(obj: dict[str, Any], user: str, *, spec: dict[str, Any] | None = None,
           annotations: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    new = {"metadata": {**obj["metadata"], "annotations": {**obj["metadata"]["annotations"],
                                                           **(annotations or {})}},
           "spec": spec if spec is not None else obj["spec"]}  # fmt: skip
    stamps = audit_annotations(operation="UPDATE", username=user, operator_username="op",
                               old=obj, new=new, key=KEY, now=T0 + 500)  # fmt: skip
    new["metadata"]["annotations"].update(stamps)
    if new["spec"] != obj["spec"]:
        new["metadata"]["generation"] = obj["metadata"]["generation"] + 1
    return new


def trusted(obj: dict[str, Any], key: bytes = KEY) -> tuple[str, str]:
    stamps = trusted_stamps(obj["metadata"], key)
    return stamps[CREATED], stamps[MODIFIED]


def test_create_stamps_the_user_with_proofs_that_verify() -> None:
    obj = create("alice", annotations={CREATED: "mallory", ANNOTATION_CREATED_BY_PROOF: "v1.x.y"})
    ann = obj["metadata"]["annotations"]
    assert (ann[CREATED], ann[MODIFIED]) == ("alice", "alice")
    assert trusted(obj) == ("alice", "alice")


def test_forged_stamps_without_the_webhook_read_unknown() -> None:
    forged = {"metadata": {"name": "m", "namespace": "team", "generation": 1,
                           "creationTimestamp": stamp(T0),
                           "annotations": {CREATED: "alice", MODIFIED: "alice"}}}  # fmt: skip
    assert trusted(forged) == ("unknown", "unknown")
    forged["metadata"]["annotations"][ANNOTATION_CREATED_BY_PROOF] = f"v1.{T0}.{'0' * 64}"
    assert trusted(forged) == ("unknown", "unknown")


def test_proofs_copied_to_another_model_or_a_later_one_read_unknown() -> None:
    genuine = create("alice")
    copied = create("mallory", name="other")  # then mallory pastes alice's annotations
    copied["metadata"]["annotations"] = dict(genuine["metadata"]["annotations"])
    assert trusted(copied) == ("unknown", "unknown")
    # Same name, recreated later (webhook down) with the old annotations pasted back.
    replay = {**genuine, "metadata": {**genuine["metadata"], "creationTimestamp": stamp(T0 + 3600)}}
    assert trusted(replay) == ("unknown", "unknown")
    assert trusted(genuine, key=b"another key") == ("unknown", "unknown")


def test_spec_change_moves_last_modified_and_keeps_created() -> None:
    obj = update(create("alice"), "bob", spec={"a": 2})
    assert obj["metadata"]["generation"] == 2
    assert trusted(obj) == ("alice", "bob")


def test_spec_change_while_the_webhook_is_down_reads_unknown() -> None:
    obj = update(create("alice"), "bob", spec={"a": 2})
    unseen = {**obj, "spec": {"a": 3}, "metadata": {**obj["metadata"], "generation": 3}}
    assert trusted(unseen) == ("alice", "unknown")


def test_metadata_writes_stamp_nothing_and_tampering_is_put_back() -> None:
    obj = create("alice")
    ann = obj["metadata"]["annotations"]
    tampered = update(obj, "bob", annotations={CREATED: "bob", ANNOTATION_CREATED_BY_PROOF: "x",
                                               ANNOTATION_LAST_MODIFIED_BY_PROOF: "y"})  # fmt: skip
    assert tampered["metadata"]["annotations"] == ann
    assert trusted(tampered) == ("alice", "alice")


def test_operator_writes_stamp_no_one_but_keep_the_proof_current() -> None:
    obj = create("alice")
    blank: dict[str, Any] = {"metadata": {}, "spec": {}}
    by_op = audit_annotations(operation="CREATE", username="op", operator_username="op",
                              old=None, new=blank, key=KEY, now=T0)  # fmt: skip
    assert by_op == {}
    changed = update(obj, "op", spec={"a": 5})
    assert changed["metadata"]["annotations"][MODIFIED] == "alice"
    assert trusted(changed) == ("alice", "alice")


def test_generated_names_bind_the_prefix() -> None:
    new = {"metadata": {"generateName": "m-", "namespace": "team", "annotations": {}}, "spec": {}}
    stamps = audit_annotations(operation="CREATE", username="alice", operator_username="op",
                               old=None, new=new, key=KEY, now=T0)  # fmt: skip
    meta = {"name": "m-x7k2p", "generateName": "m-", "namespace": "team", "generation": 1,
            "creationTimestamp": stamp(T0), "annotations": stamps}  # fmt: skip
    assert trusted({"metadata": meta}) == ("alice", "alice")
    assert trusted({"metadata": {**meta, "generateName": "n-", "name": "n-x7k2p"}}) == (
        "unknown",
        "unknown",
    )


def test_with_trusted_stamps_replaces_only_the_stamps() -> None:
    obj = create("alice", annotations={"team": "risk", CREATED: "mallory"})
    forged = {**obj, "metadata": {**obj["metadata"], "annotations": {
        **obj["metadata"]["annotations"], CREATED: "mallory"}}}  # fmt: skip
    seen = with_trusted_stamps(forged, KEY)
    assert seen["metadata"]["annotations"][CREATED] == "unknown"
    assert seen["metadata"]["annotations"]["team"] == "risk"
    assert seen["spec"] == obj["spec"] and forged["metadata"]["annotations"][CREATED] == "mallory"
