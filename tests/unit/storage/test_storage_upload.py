"""Create-only, content-addressed uploads into a file:// store (B4): nobody's bytes replaced."""

import pytest

from mlkube.storage import ArtifactExists, artifact_prefix, compute_digest, publish, upload
from mlkube.storage.digest import digest_of_contents


def test_two_namespaces_publishing_fraud_1_keep_their_own_bytes(tmp_path):
    # Before: both landed at <store>/fraud/1/model.onnx and the second replaced the first.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "model.onnx").write_bytes(b"team a")
    (tmp_path / "b" / "model.onnx").write_bytes(b"team b")
    store = (tmp_path / "store").as_uri()
    uri_a, facts_a = publish(str(tmp_path / "a" / "model.onnx"), store,
                             namespace="team-a", name="fraud", version="1")  # fmt: skip
    uri_b, facts_b = publish(str(tmp_path / "b" / "model.onnx"), store,
                             namespace="team-b", name="fraud", version="1")  # fmt: skip
    assert uri_a == artifact_prefix(store, "team-a", "fraud", "1", facts_a.digest) + "/model.onnx"
    assert uri_a != uri_b
    assert compute_digest(uri_a) == facts_a == digest_of_contents([("model.onnx", b"team a")])
    assert compute_digest(uri_b) == facts_b


def test_same_namespace_different_bytes_land_apart(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"v1")
    store = (tmp_path / "store").as_uri()
    first, _ = publish(str(tmp_path / "m.onnx"), store, namespace="ns", name="m", version="1")
    (tmp_path / "m.onnx").write_bytes(b"v2")
    second, _ = publish(str(tmp_path / "m.onnx"), store, namespace="ns", name="m", version="1")
    assert first != second
    assert compute_digest(first) == digest_of_contents([("m.onnx", b"v1")])


@pytest.mark.parametrize("folder", [False, True])
def test_upload_is_create_only(tmp_path, folder):
    source = tmp_path / ("model" if folder else "model.pkl")
    if folder:
        source.mkdir()
        (source / "w.bin").write_bytes(b"one")
    else:
        source.write_bytes(b"one")
    store = (tmp_path / "store").as_uri()
    uri = upload(str(source), store)
    original = compute_digest(uri)
    assert upload(str(source), store) == uri  # identical bytes: fine
    (source / "w.bin" if folder else source).write_bytes(b"two")
    with pytest.raises(ArtifactExists, match="create-only"):
        upload(str(source), store)
    assert compute_digest(uri) == original


@pytest.mark.parametrize("folder", [False, True])
def test_a_racing_registration_is_refused_and_its_bytes_kept(tmp_path, folder):
    """Another registration creates the target while this one uploads: this one fails."""
    source = tmp_path / ("model" if folder else "model.pkl")
    if folder:
        source.mkdir()
        (source / "w.bin").write_bytes(b"mine" * 1000)
    else:
        source.write_bytes(b"mine" * 1000)
    target = tmp_path / "store" / source.name

    def racer(done, total):
        if done and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            if folder:
                target.mkdir()
                (target / "w.bin").write_bytes(b"theirs")
            else:
                target.write_bytes(b"theirs")

    with pytest.raises(ArtifactExists, match="concurrent registration"):
        upload(str(source), (tmp_path / "store").as_uri(), racer)
    written = target / "w.bin" if folder else target
    assert written.read_bytes() == b"theirs"
    assert sorted(p.name for p in target.parent.iterdir()) == [source.name]  # no staging left


def test_overwrite_only_when_no_model_uses_the_bytes(tmp_path):
    (tmp_path / "m.pkl").write_bytes(b"one")
    store = (tmp_path / "store").as_uri()
    uri = upload(str(tmp_path / "m.pkl"), store)
    (tmp_path / "m.pkl").write_bytes(b"two")
    asked = []

    def used_by(target):
        asked.append(target)
        return ["team-b/fraud-v1"]

    with pytest.raises(ArtifactExists, match="used by Model team-b/fraud-v1"):
        upload(str(tmp_path / "m.pkl"), store, overwrite=True, references=used_by)
    assert asked == [uri]
    with pytest.raises(ArtifactExists, match="nobody checked"):
        upload(str(tmp_path / "m.pkl"), store, overwrite=True)
    assert compute_digest(uri) == digest_of_contents([("m.pkl", b"one")])
    upload(str(tmp_path / "m.pkl"), store, overwrite=True, references=lambda target: [])
    assert compute_digest(uri) == digest_of_contents([("m.pkl", b"two")])
