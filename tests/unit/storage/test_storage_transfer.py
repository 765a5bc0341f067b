"""Download, verify and upload against local schemes (file://, pvc://); no network."""

import os

import pytest

from mlkube.storage import (
    ArtifactNotFound,
    DigestMismatch,
    StorageError,
    UnsupportedScheme,
    compute_digest,
    download,
    download_and_verify,
    upload,
)
from mlkube.storage.digest import digest_of_contents

FOLDER = {"MLmodel": b"flavors: {}\n", "data/model.pkl": b"abc" * 1000, "data/.hidden": b"h"}


def write_tree(root, files):
    for relpath, content in files.items():
        path = root.joinpath(*relpath.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def read_tree(root):
    return {
        os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/"): open(
            os.path.join(d, f), "rb"
        ).read()
        for d, _, names in os.walk(root)
        for f in names
    }


def test_file_folder_round_trip(tmp_path):
    write_tree(tmp_path / "src" / "model", FOLDER)
    artifact = upload(str(tmp_path / "src" / "model"), (tmp_path / "store").as_uri() + "/m/1")
    assert artifact == (tmp_path / "store" / "m" / "1" / "model").as_uri()
    facts = download(artifact, str(tmp_path / "dest"))
    assert read_tree(tmp_path / "dest") == FOLDER
    assert facts == digest_of_contents(FOLDER.items()) == compute_digest(artifact)


def test_single_file_lands_under_its_basename(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"onnx-bytes")
    artifact = upload(str(tmp_path / "model.onnx"), (tmp_path / "store").as_uri())
    assert artifact.endswith("/store/model.onnx")
    facts = download(artifact, str(tmp_path / "dest"))
    assert read_tree(tmp_path / "dest") == {"model.onnx": b"onnx-bytes"}
    assert facts.file_count == 1 and facts.size == 10


def test_pvc_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("MLKUBE_PVC_ROOT", str(tmp_path / "mnt"))
    write_tree(tmp_path / "src" / "model", FOLDER)
    artifact = upload(str(tmp_path / "src" / "model"), "pvc://models/credit/3")
    assert artifact == "pvc://models/credit/3/model"
    assert read_tree(tmp_path / "mnt" / "models" / "credit" / "3" / "model") == FOLDER
    expected = digest_of_contents(FOLDER.items()).digest
    facts = download_and_verify(artifact, str(tmp_path / "dest"), expected)
    assert facts.digest == expected
    assert read_tree(tmp_path / "dest") == FOLDER


def test_upload_reports_progress(tmp_path):
    write_tree(tmp_path / "m", {"a": b"x" * 3_000_000, "b": b"y" * 10})
    calls = []
    upload(str(tmp_path / "m"), (tmp_path / "store").as_uri(), lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, 3_000_010)
    assert calls[-1] == (3_000_010, 3_000_010)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert len(calls) >= 4  # chunked: more than one report for the 3 MB file


def test_mismatch_shows_both_digests_and_removes_files(tmp_path):
    (tmp_path / "model.pkl").write_bytes(b"tampered")
    expected = "sha256:" + "ab" * 32
    with pytest.raises(DigestMismatch) as caught:
        download_and_verify((tmp_path / "model.pkl").as_uri(), str(tmp_path / "dest"), expected)
    actual = compute_digest((tmp_path / "model.pkl").as_uri()).digest
    assert (caught.value.expected, caught.value.actual) == (expected, actual)
    assert expected in str(caught.value) and actual in str(caught.value)
    assert read_tree(tmp_path / "dest") == {}


def test_verify_without_expected_digest_just_downloads(tmp_path):
    (tmp_path / "m.pkl").write_bytes(b"1")
    facts = download_and_verify((tmp_path / "m.pkl").as_uri(), str(tmp_path / "d"), None)
    assert facts.file_count == 1


def test_malformed_expected_digest_fails_before_transfer(tmp_path):
    (tmp_path / "m.pkl").write_bytes(b"1")
    with pytest.raises(StorageError, match="malformed digest"):
        download_and_verify((tmp_path / "m.pkl").as_uri(), str(tmp_path / "d"), "deadbeef")
    assert not (tmp_path / "d").exists()


def test_missing_artifact(tmp_path):
    missing = (tmp_path / "nope").as_uri()
    with pytest.raises(ArtifactNotFound, match="artifact not found: file://"):
        compute_digest(missing)
    with pytest.raises(ArtifactNotFound):
        download(missing, str(tmp_path / "d"))
    with pytest.raises(ArtifactNotFound, match="nothing to upload"):
        upload(str(tmp_path / "nope"), (tmp_path / "store").as_uri())


def test_upload_refuses_empty_folder_and_http(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(StorageError, match="empty folder"):
        upload(str(tmp_path / "empty"), (tmp_path / "store").as_uri())
    (tmp_path / "m.pkl").write_bytes(b"1")
    with pytest.raises(UnsupportedScheme, match="cannot upload to https://"):
        upload(str(tmp_path / "m.pkl"), "https://example.invalid/store")


def test_upload_into_its_own_location_is_a_no_op(tmp_path):
    (tmp_path / "m.pkl").write_bytes(b"1")
    assert upload(str(tmp_path / "m.pkl"), tmp_path.as_uri()) == (tmp_path / "m.pkl").as_uri()
    assert (tmp_path / "m.pkl").read_bytes() == b"1"


def test_download_overwrites_and_leaves_no_partial_files(tmp_path):
    write_tree(tmp_path / "m", {"a": b"new"})
    write_tree(tmp_path / "dest", {"a": b"old"})
    download((tmp_path / "m").as_uri(), str(tmp_path / "dest"))
    assert read_tree(tmp_path / "dest") == {"a": b"new"}


def test_folder_upload_overwrite_replaces_stale_files(tmp_path):
    write_tree(tmp_path / "model", {"a": b"1", "old": b"stale"})
    store = (tmp_path / "store").as_uri()
    upload(str(tmp_path / "model"), store)
    (tmp_path / "model" / "old").unlink()
    artifact = upload(str(tmp_path / "model"), store, overwrite=True, references=lambda uri: [])
    assert compute_digest(artifact) == digest_of_contents([("a", b"1")])
