"""http:// artifacts served by a real `python -m http.server` process."""

import os

import pytest

from mlkube.storage import ArtifactNotFound, DigestMismatch, compute_digest, download_and_verify
from mlkube.storage.digest import digest_of_contents


def test_http_digest_and_download(http_root, tmp_path):
    root, base = http_root
    content = os.urandom(3 * 1024 * 1024 + 1)
    os.makedirs(os.path.join(root, "models"), exist_ok=True)
    with open(os.path.join(root, "models", "model v1.onnx"), "wb") as handle:
        handle.write(content)
    uri = f"{base}/models/model%20v1.onnx"
    expected = digest_of_contents([("model v1.onnx", content)])
    assert compute_digest(uri) == expected
    facts = download_and_verify(uri, str(tmp_path / "dest"), expected.digest)
    assert facts == expected
    assert (tmp_path / "dest" / "model v1.onnx").read_bytes() == content


def test_http_missing_and_mismatch(http_root, tmp_path):
    root, base = http_root
    with pytest.raises(ArtifactNotFound, match="artifact not found: http://"):
        compute_digest(f"{base}/absent.pkl")
    with open(os.path.join(root, "m.pkl"), "wb") as handle:
        handle.write(b"x")
    with pytest.raises(DigestMismatch, match=r"expected sha256:0{64}, got sha256:"):
        download_and_verify(f"{base}/m.pkl", str(tmp_path / "d"), "sha256:" + "0" * 64)
