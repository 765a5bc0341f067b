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


def test_http_outage_is_transient_not_absent(tmp_path):
    """A refused connection or a 503 must be retried, not fail a Model for good as absent."""
    import http.server
    import threading

    from mlkube.devcluster.procs import free_port
    from mlkube.storage import StorageError

    closed = free_port()
    with pytest.raises(StorageError) as refused:
        compute_digest(f"http://127.0.0.1:{closed}/m.pkl")
    assert not isinstance(refused.value, ArtifactNotFound)
    assert refused.value.permanent is False

    class Unavailable(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(StorageError) as busy:
            compute_digest(f"http://127.0.0.1:{server.server_address[1]}/m.pkl")
    finally:
        server.shutdown()
    assert not isinstance(busy.value, ArtifactNotFound)
    assert busy.value.permanent is False
