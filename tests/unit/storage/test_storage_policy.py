"""FetchPolicy: caps, local access and address refusal, without any network traffic."""

import asyncio
import ipaddress
import socket

import pytest

from mlkube.storage import (
    ArtifactLocationRefused,
    ArtifactTimeout,
    ArtifactTooLarge,
    FetchLimits,
    FetchPolicy,
    InvalidArtifact,
    StorageError,
    compute_digest,
    download,
    errors,
)
from mlkube.storage.locations import check_location, resolve
from mlkube.storage.netguard import GuardedResolver, _socket_factory

OPERATOR = FetchPolicy(guard_network=True, allow_local=False)


def tree(root, files):
    for relpath, content in files.items():
        path = root.joinpath(*relpath.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/m.pkl", "link-local"),
        ("http://[fe80::1]/m.pkl", "link-local"),
        ("http://[::ffff:169.254.169.254]/m.pkl", "link-local"),
        # NAT64 and 6to4 forms reach the embedded IPv4 address through a gateway.
        ("http://[64:ff9b::a9fe:a9fe]/m.pkl", "link-local"),
        ("http://[64:ff9b::10.96.0.1]/m.pkl", "private"),
        ("http://[64:ff9b:1::a60:1]/m.pkl", "private"),
        ("http://[2002:a9fe:a9fe::1]/m.pkl", "link-local"),
        ("http://[2002:c0a8:010a::]/m.pkl", "private"),
        ("http://[2002:7f00:1::]/m.pkl", "loopback"),
        ("http://[fd00:ec2::254]/m.pkl", "private"),
        ("http://100.100.100.200/m.pkl", "private"),
        ("http://metadata.google.internal/computeMetadata/v1/m.pkl", "metadata host"),
        ("http://metadata/m.pkl", "metadata host"),
        ("https://kubernetes.default.svc/m.pkl", "cluster-internal name"),
        ("https://minio.storage.svc.cluster.local:9000/m.pkl", "cluster-internal name"),
        ("http://minio/m.pkl", "single-label"),
        ("http://10.96.0.1/m.pkl", "private"),
        ("http://192.168.1.10/m.pkl", "private"),
        ("http://127.0.0.1:8000/m.pkl", "loopback"),
        ("http://localhost:8000/m.pkl", "loopback"),
        ("http://0.0.0.0/m.pkl", "not a unicast"),
        ("file:///etc/passwd", "dev mode only"),
        ("pvc://claim/m.pkl", "dev mode only"),
    ],
)
def test_the_operator_policy_refuses_before_any_io(uri, why):
    with pytest.raises(ArtifactLocationRefused, match=why):
        check_location(resolve(uri), OPERATOR)  # pure: nothing is contacted


@pytest.mark.parametrize(
    "uri", ["http://127.0.0.1:9/m.pkl", "http://localhost:9/m.pkl", "file:///etc/passwd"]
)
def test_reads_check_the_location_first(uri):
    # Loopback and local only, so nothing could leave the machine even if the check regressed.
    with pytest.raises(ArtifactLocationRefused):
        compute_digest(uri, OPERATOR)


def test_public_hosts_and_dev_mode_loopback_pass():
    check_location(resolve("https://models.example.com/fraud/1/m.onnx"), OPERATOR)
    check_location(resolve("http://203.0.113.7/m.onnx"), OPERATOR)
    # NAT64 / 6to4 of a public address stay allowed.
    check_location(resolve("http://[64:ff9b::cb00:7107]/m.onnx"), OPERATOR)
    check_location(resolve("http://[2002:cb00:7107::1]/m.onnx"), OPERATOR)
    dev = FetchPolicy(guard_network=True, allow_local=True)
    check_location(resolve("http://127.0.0.1:9000/m.onnx"), dev)
    check_location(resolve("file:///tmp/m.onnx"), dev)
    # Explicitly listed networks stay refused even in dev mode.
    listed = FetchPolicy(guard_network=True, allow_local=True, internal_networks=("127.0.0.2/32",))
    assert listed.address_problem(ipaddress.ip_address("127.0.0.2")) is not None
    assert (
        FetchPolicy(internal_networks=()).address_problem(ipaddress.ip_address("10.0.0.1")) is None
    )


def test_a_name_resolving_to_a_forbidden_address_is_refused():
    class Inner:
        async def resolve(self, host, port, family):
            return [{"hostname": host, "host": "169.254.169.254", "port": port, "family": family,
                     "proto": 0, "flags": 0}]  # fmt: skip

        async def close(self):
            pass

    async def run():
        resolver = GuardedResolver(OPERATOR)
        resolver._inner = Inner()
        await resolver.resolve("models.example.com", 443)

    with pytest.raises(ArtifactLocationRefused, match=r"models\.example\.com: 169\.254\.169\.254"):
        asyncio.run(run())


def test_the_socket_factory_refuses_the_address_it_would_connect_to():
    create = _socket_factory(OPERATOR)
    with pytest.raises(ArtifactLocationRefused, match="link-local"):
        create((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 80)))
    sock = create((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("203.0.113.7", 80)))
    sock.close()


def test_file_count_cap_refuses_before_reading(tmp_path):
    artifact = tree(tmp_path / "m", {"a": b"1", "b": b"2", "c/d": b"3"})
    capped = FetchPolicy(limits=FetchLimits(max_files=2))
    with pytest.raises(ArtifactTooLarge, match="3 files, more than the cap of 2"):
        compute_digest(artifact.as_uri(), capped)
    assert compute_digest(artifact.as_uri(), FetchPolicy(limits=FetchLimits(max_files=3)))


def test_byte_cap_refuses_and_a_capped_download_leaves_nothing(tmp_path):
    artifact = tree(tmp_path / "m", {"a": b"x" * 1000, "b": b"y" * 1000})
    capped = FetchPolicy(limits=FetchLimits(max_bytes=1500))
    with pytest.raises(ArtifactTooLarge, match="2000 bytes, more than the cap of 1500"):
        compute_digest(artifact.as_uri(), capped)
    with pytest.raises(ArtifactTooLarge):
        download(artifact.as_uri(), str(tmp_path / "dest"), capped)
    assert not (tmp_path / "dest").exists() or files_under(tmp_path / "dest") == []


def test_wall_clock_cap(tmp_path):
    artifact = tree(tmp_path / "m", {"a": b"1"})
    with pytest.raises(ArtifactTimeout, match="longer than"):
        compute_digest(artifact.as_uri(), FetchPolicy(limits=FetchLimits(timeout=1e-9)))


def test_a_symlink_in_the_destination_cannot_redirect_a_download(tmp_path):
    # Before: dest/sub -> outside was followed and outside/x written.
    artifact = tree(tmp_path / "m", {"sub/x": b"1", "y": b"2"})
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "sub").symlink_to(outside)
    with pytest.raises(InvalidArtifact, match="would land outside"):
        download(artifact.as_uri(), str(tmp_path / "dest"))
    assert files_under(outside) == []
    assert not (tmp_path / "dest" / "y").exists()  # nothing written before the check


def test_every_error_says_whether_retrying_can_help():
    permanent = {
        errors.ArtifactNotFound, errors.DigestMismatch, errors.ArtifactTooLarge,
        errors.ArtifactLocationRefused, errors.UnsupportedScheme, errors.InvalidArtifact,
        errors.DigestRequired, errors.ArtifactExists,
    }  # fmt: skip
    for cls in [StorageError, *StorageError.__subclasses__()]:
        assert cls.permanent == (cls in permanent), cls
        assert cls.reason and cls.reason[0].isupper()
    assert not errors.ArtifactTimeout.permanent
