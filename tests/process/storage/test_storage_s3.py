"""Upload, download and digest against a real S3-compatible server process."""

import os
import urllib.error
import urllib.request

import pytest

from mlkube.storage import (
    ArtifactExists,
    ArtifactNotFound,
    ArtifactTooLarge,
    DigestMismatch,
    FetchLimits,
    FetchPolicy,
    compute_digest,
    download,
    download_and_verify,
    publish,
    upload,
)
from mlkube.storage.digest import digest_of_contents

FOLDER = {
    "MLmodel": b"flavors: {}\n",
    "data/model.pkl": os.urandom(12 * 1024 * 1024 + 7),  # > one 8 MiB block: multipart + ranges
    "data/empty": b"",
    "conda.yaml": b"name: x\n",
}


def write_tree(root, files):
    for relpath, content in files.items():
        path = root.joinpath(*relpath.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def read_tree(root):
    out = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as handle:
                out[os.path.relpath(path, root).replace(os.sep, "/")] = handle.read()
    return out


def test_server_identity(s3_server):
    try:
        with urllib.request.urlopen(s3_server.endpoint + "/", timeout=5) as response:
            server_header = response.headers.get("Server", "")
    except urllib.error.HTTPError as refused:  # MinIO refuses anonymous listing with 403
        server_header = refused.headers.get("Server", "")
    assert s3_server.kind in ("minio", "moto")
    if s3_server.kind == "minio":
        assert "MinIO" in server_header


def test_folder_upload_download_digest(s3_bucket, tmp_path):
    write_tree(tmp_path / "model", FOLDER)
    progress = []
    artifact = upload(
        str(tmp_path / "model"), f"s3://{s3_bucket}/credit/3", lambda d, t: progress.append(d)
    )
    assert artifact == f"s3://{s3_bucket}/credit/3/model"
    assert progress[-1] == sum(len(c) for c in FOLDER.values())
    expected = digest_of_contents(FOLDER.items())
    assert compute_digest(artifact) == expected
    assert compute_digest(artifact + "/") == expected
    facts = download_and_verify(artifact, str(tmp_path / "dest"), expected.digest)
    assert facts == expected
    assert read_tree(tmp_path / "dest") == FOLDER


def test_single_object(s3_bucket, tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    artifact = upload(str(tmp_path / "model.onnx"), f"s3://{s3_bucket}")
    assert artifact == f"s3://{s3_bucket}/model.onnx"
    local = compute_digest((tmp_path / "model.onnx").as_uri())
    assert compute_digest(artifact) == local
    assert download(artifact, str(tmp_path / "d")) == local
    assert read_tree(tmp_path / "d") == {"model.onnx": b"onnx"}


def test_mismatch_against_s3(s3_bucket, tmp_path):
    (tmp_path / "m.pkl").write_bytes(b"v1")
    artifact = upload(str(tmp_path / "m.pkl"), f"s3://{s3_bucket}/m")
    registered = compute_digest(artifact).digest
    (tmp_path / "m.pkl").write_bytes(b"v2")
    # overwritten behind the registry's back
    upload(str(tmp_path / "m.pkl"), f"s3://{s3_bucket}/m", overwrite=True, references=lambda u: [])
    with pytest.raises(DigestMismatch) as caught:
        download_and_verify(artifact, str(tmp_path / "d"), registered)
    message = str(caught.value)
    assert registered in message and caught.value.actual in message
    assert caught.value.actual == compute_digest(artifact).digest != registered


def test_missing_key_and_bucket(s3_bucket):
    with pytest.raises(ArtifactNotFound, match="artifact not found: s3://"):
        compute_digest(f"s3://{s3_bucket}/nope/model.pkl")
    with pytest.raises(ArtifactNotFound):
        compute_digest(f"s3://{s3_bucket}-missing/model.pkl")


def test_reupload_is_create_only_and_overwrite_replaces_stale_objects(s3_bucket, tmp_path):
    write_tree(tmp_path / "model", {"a": b"1", "old": b"stale"})
    first = upload(str(tmp_path / "model"), f"s3://{s3_bucket}/m")
    assert upload(str(tmp_path / "model"), f"s3://{s3_bucket}/m") == first  # same bytes: fine
    (tmp_path / "model" / "old").unlink()
    with pytest.raises(ArtifactExists, match="create-only"):
        upload(str(tmp_path / "model"), f"s3://{s3_bucket}/m")
    assert compute_digest(first) == digest_of_contents([("a", b"1"), ("old", b"stale")])
    with pytest.raises(ArtifactExists, match="used by Model team-a/fraud-v1"):
        upload(str(tmp_path / "model"), f"s3://{s3_bucket}/m", overwrite=True,
               references=lambda uri: ["team-a/fraud-v1"])  # fmt: skip
    artifact = upload(
        str(tmp_path / "model"), f"s3://{s3_bucket}/m", overwrite=True, references=lambda u: []
    )
    assert compute_digest(artifact) == digest_of_contents([("a", b"1")])


def test_two_namespaces_publish_the_same_version_apart(s3_bucket, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "fraud.onnx").write_bytes(b"team a weights")
    (tmp_path / "b" / "fraud.onnx").write_bytes(b"team b weights")
    store = f"s3://{s3_bucket}/models"
    uri_a, facts_a = publish(str(tmp_path / "a" / "fraud.onnx"), store,
                             namespace="team-a", name="fraud", version="1")  # fmt: skip
    uri_b, facts_b = publish(str(tmp_path / "b" / "fraud.onnx"), store,
                             namespace="team-b", name="fraud", version="1")  # fmt: skip
    assert uri_a.startswith(f"{store}/team-a/fraud/1/") and uri_b.startswith(f"{store}/team-b/")
    assert compute_digest(uri_a) == facts_a != facts_b == compute_digest(uri_b)


def test_a_prefix_with_too_many_keys_is_refused_before_it_is_listed(s3_bucket, tmp_path):
    import s3fs

    endpoint = os.environ["MLKUBE_S3_ENDPOINT_URL"]
    fs = s3fs.S3FileSystem(skip_instance_cache=True, client_kwargs={"endpoint_url": endpoint})
    for i in range(25):
        fs.pipe(f"{s3_bucket}/many/d{i % 3}/k{i}", b"x")
    capped = FetchPolicy(limits=FetchLimits(max_files=10))
    with pytest.raises(ArtifactTooLarge, match="holds 11 files, more than the cap of 10"):
        compute_digest(f"s3://{s3_bucket}/many", capped)
    roomy = FetchPolicy(limits=FetchLimits(max_files=25))
    assert compute_digest(f"s3://{s3_bucket}/many", roomy).file_count == 25
