"""URI parsing per scheme; cloud SDKs are imported only when their scheme is opened."""

import sys
import types

import pytest

from mlkube.storage import StorageError, UnsupportedScheme, compute_digest
from mlkube.storage.locations import open_filesystem, read_options, resolve


@pytest.mark.parametrize(
    ("uri", "scheme", "path"),
    [
        ("s3://bucket/models/m/1/model.pkl", "s3", "bucket/models/m/1/model.pkl"),
        ("s3://bucket/prefix/", "s3", "bucket/prefix"),
        ("s3://bucket", "s3", "bucket"),
        ("gs://b/k", "gs", "b/k"),
        ("https://h.example/a/m.onnx?sig=1", "https", "https://h.example/a/m.onnx?sig=1"),
        ("http://127.0.0.1:8000/m.pkl", "http", "http://127.0.0.1:8000/m.pkl"),
        ("file:///tmp/a%20b/m.pkl", "file", "/tmp/a b/m.pkl"),
        ("file://localhost/tmp/x/", "file", "/tmp/x"),
        ("pvc://models/credit/3", "pvc", "/mnt/pvc/models/credit/3"),
        ("pvc://models", "pvc", "/mnt/pvc/models"),
    ],
)
def test_resolve(uri, scheme, path):
    location = resolve(uri, env={})
    assert (location.scheme, location.path, location.uri) == (scheme, path, uri)


def test_pvc_root_comes_from_env():
    location = resolve("pvc://claim/dir/model.onnx", env={"MLKUBE_PVC_ROOT": "/data/claims"})
    assert location.path == "/data/claims/claim/dir/model.onnx"
    assert location.is_local


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("pvc://claim/../other/x", "escapes its claim"),
        ("pvc:///no-claim", "needs a claim"),
        ("pvc://Bad_Claim/x", "needs a claim"),
        ("file://remote-host/x", "must be local"),
        ("s3:///key-without-bucket", "without bucket"),
        ("https:///path", "without host"),
    ],
)
def test_resolve_rejects(uri, message):
    with pytest.raises(StorageError, match=message):
        resolve(uri, env={})


@pytest.mark.parametrize("uri", ["/tmp/model.pkl", "ftp://h/m", "azureml://x", "relative/m.pkl"])
def test_unsupported_schemes(uri):
    with pytest.raises(UnsupportedScheme, match="scheme must be one of s3, gs, https"):
        resolve(uri)


def test_bare_path_hint():
    with pytest.raises(UnsupportedScheme, match="file:///absolute/path"):
        compute_digest("/tmp/model.pkl")


def test_gs_without_gcsfs_errors_clearly(monkeypatch):
    monkeypatch.setitem(sys.modules, "gcsfs", None)  # import gcsfs -> ImportError
    location = resolve("gs://bucket/model.pkl")  # parsing needs no SDK
    with pytest.raises(StorageError, match="gs:// artifacts need gcsfs: pip install gcsfs"):
        open_filesystem(location)
    with pytest.raises(StorageError, match="need gcsfs"):
        compute_digest("gs://bucket/model.pkl")


def test_gs_opens_gcsfs_lazily_with_env_credentials(monkeypatch):
    created = []

    class FakeGCSFileSystem:
        def __init__(self, **kwargs):
            created.append(kwargs)

    monkeypatch.setitem(
        sys.modules, "gcsfs", types.SimpleNamespace(GCSFileSystem=FakeGCSFileSystem)
    )
    location = resolve("gs://bucket/model.pkl")
    assert created == []
    fs = open_filesystem(location, env={"GOOGLE_APPLICATION_CREDENTIALS": "/var/run/sa.json"})
    assert isinstance(fs, FakeGCSFileSystem)
    assert created == [{"skip_instance_cache": True, "token": "/var/run/sa.json"}]


def test_s3_without_s3fs_errors_clearly(monkeypatch):
    monkeypatch.setitem(sys.modules, "s3fs", None)
    with pytest.raises(StorageError, match="s3:// artifacts need s3fs"):
        open_filesystem(resolve("s3://b/k"))


@pytest.mark.parametrize(
    ("env", "endpoint"),
    [
        ({}, None),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}, "http://127.0.0.1:1"),
        (
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "MLKUBE_S3_ENDPOINT_URL": "http://[::1]:2"},
            "http://[::1]:2",
        ),
    ],
)
def test_s3_endpoint_from_env(env, endpoint):
    fs = open_filesystem(resolve("s3://b/k"), env=env)
    assert fs.client_kwargs.get("endpoint_url") == endpoint


def test_read_options_stream():
    assert read_options(resolve("https://h/m.pkl")) == {"block_size": 0}
    assert read_options(resolve("s3://b/m.pkl"))["block_size"] == 8 * 1024 * 1024
    assert read_options(resolve("file:///m.pkl")) == {}
