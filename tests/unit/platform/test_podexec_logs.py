"""The dev pod executor's logs as kwok serves them: CRI lines from the raw file, a tick at a
time, and the kwok Logs object that points kwok at them."""

from __future__ import annotations

import re
from pathlib import Path

from mlkube.devcluster import kwok
from mlkube.devcluster.podexec_logs import MAX_LINE, LogMirror, cri_lines

CRI = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z stdout [FP] .*$")


def test_complete_lines_become_cri_lines_and_the_rest_waits() -> None:
    out, rest = cri_lines(b"one\ntwo\npart", "2026-01-01T00:00:00.000001Z")
    assert out == (
        b"2026-01-01T00:00:00.000001Z stdout F one\n2026-01-01T00:00:00.000001Z stdout F two\n"
    )
    assert rest == b"part"
    final, rest = cri_lines(rest, "2026-01-01T00:00:01.000000Z", final=True)
    assert final == b"2026-01-01T00:00:01.000000Z stdout F part\n" and rest == b""
    assert cri_lines(b"", "t", final=True) == (b"", b"")
    empty_line, _ = cri_lines(b"\n", "t")
    assert empty_line == b"t stdout F \n"  # an empty line is a line


def test_long_lines_are_split_into_partial_pieces() -> None:
    out, rest = cri_lines(b"x" * (MAX_LINE + 5) + b"\n", "t")
    assert out.splitlines() == [b"t stdout P " + b"x" * MAX_LINE, b"t stdout F xxxxx"]
    assert rest == b""


def test_mirror_copies_what_was_appended(tmp_path: Path) -> None:
    raw = tmp_path / "main" / "0.log"
    raw.parent.mkdir()
    raw.write_bytes(b"")
    mirror = LogMirror(raw)
    assert mirror.cri == tmp_path / "main" / "0.cri.log" and mirror.cri.read_bytes() == b""
    with open(raw, "ab") as f:
        f.write(b"hello\nwor")
    mirror.pump()
    with open(raw, "ab") as f:
        f.write(b"ld\nbye")
    mirror.pump()
    mirror.pump(final=True)
    lines = mirror.cri.read_bytes().splitlines()
    assert all(CRI.match(line) for line in lines), lines
    assert [line.split(b" ", 3)[3] for line in lines] == [b"hello", b"world", b"bye"]


def test_logs_object_names_each_container_file_and_is_owned_by_the_pod() -> None:
    pod = {"metadata": {"name": "p-0", "namespace": "ml", "uid": "u-1"}}
    logs = kwok.build_pod_logs(pod, {"scorer": "/w/scorer/0.cri.log", "init": "/w/init/0.cri.log"})
    assert logs["apiVersion"] == "kwok.x-k8s.io/v1alpha1" and logs["kind"] == "Logs"
    assert (logs["metadata"]["name"], logs["metadata"]["namespace"]) == ("p-0", "ml")
    assert logs["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "p-0", "uid": "u-1"}
    ]
    assert logs["spec"]["logs"] == [
        {"containers": ["init"], "logsFile": "/w/init/0.cri.log", "follow": True},
        {"containers": ["scorer"], "logsFile": "/w/scorer/0.cri.log", "follow": True},
    ]
    crd = kwok.build_logs_crd()
    assert crd["metadata"]["name"] == kwok.LOGS_CRD == "logs.kwok.x-k8s.io"
    assert crd["spec"]["names"]["plural"] == "logs"
