"""What an http(s) artifact may do to its reader, against real server processes on loopback:
escape the download folder (B3), stream forever, drip, redirect to metadata (B8)."""

import time
from pathlib import Path

import pytest

from mlkube.storage import (
    ArtifactLocationRefused,
    ArtifactTimeout,
    ArtifactTooLarge,
    FetchLimits,
    FetchPolicy,
    InvalidArtifact,
    compute_digest,
    download,
    download_and_verify,
)

DEV = FetchPolicy(guard_network=True, allow_local=True)  # an operator in dev mode


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "fetch", [download, lambda uri, dest: download_and_verify(uri, dest, None)]
)
def test_encoded_dot_dot_url_writes_nothing_outside_the_destination(http_root, tmp_path, fetch):
    # Before: dest/../../escaped was written, then the name was refused, and the file stayed.
    root, base = http_root
    # http.server decodes and normalizes the path: it serves <root>/escaped for this URL.
    Path(root, "escaped").write_bytes(b"attacker bytes")
    dest = tmp_path / "d1" / "d2" / "dest"
    with pytest.raises(InvalidArtifact):
        fetch(f"{base}/a/b/..%2F..%2Fescaped", str(dest))
    assert files_under(tmp_path) == set()


def test_an_endless_body_stops_at_the_byte_cap(hostile_http, tmp_path):
    limits = FetchLimits(max_bytes=4 * 1024 * 1024)
    policy = FetchPolicy(limits=limits, guard_network=True, allow_local=True)
    with pytest.raises(ArtifactTooLarge, match="larger than the cap of 4194304 bytes"):
        compute_digest(f"{hostile_http}/endless", policy)
    with pytest.raises(ArtifactTooLarge):
        download(f"{hostile_http}/endless", str(tmp_path / "dest"), policy)
    assert files_under(tmp_path) == set()  # the partial file is gone too


def test_a_dripping_body_stops_at_the_wall_clock_cap(hostile_http):
    policy = FetchPolicy(limits=FetchLimits(timeout=1.5), guard_network=True, allow_local=True)
    start = time.monotonic()
    with pytest.raises(ArtifactTimeout, match=r"longer than 1\.5s"):
        compute_digest(f"{hostile_http}/slow", policy)
    assert time.monotonic() - start < 5


def test_a_redirect_to_a_refused_address_is_never_followed(hostile_http):
    # 127.0.0.2 stands in for a metadata or Service address, so nothing leaves this machine
    # even if the guard failed.
    policy = FetchPolicy(guard_network=True, allow_local=True, internal_networks=("127.0.0.2/32",))
    with pytest.raises(ArtifactLocationRefused, match=r"127\.0\.0\.2 is a cluster-internal"):
        compute_digest(f"{hostile_http}/to-127.0.0.2/endless", policy)


def test_loopback_is_refused_outside_dev_mode(http_root):
    root, base = http_root
    Path(root, "m.pkl").write_bytes(b"m")
    production = FetchPolicy(guard_network=True, allow_local=False)
    with pytest.raises(ArtifactLocationRefused, match="loopback"):
        compute_digest(f"{base}/m.pkl", production)
    port = base.rsplit(":", 1)[1]
    with pytest.raises(ArtifactLocationRefused, match="loopback"):
        compute_digest(f"http://localhost:{port}/m.pkl", production)
    assert compute_digest(f"{base}/m.pkl", DEV).file_count == 1


def test_a_redirect_back_to_loopback_is_refused_outside_dev_mode(hostile_http, http_root):
    # The first hop is allowed in dev mode; production refuses before connecting at all.
    production = FetchPolicy(guard_network=True, allow_local=False)
    with pytest.raises(ArtifactLocationRefused):
        compute_digest(f"{hostile_http}/to/endless", production)
