"""mlkube.oci's pure parts: references, docker config credentials, auth challenges."""

import base64
import json

import pytest

from mlkube.oci import InvalidReference, OciError, parse, parse_docker_config
from mlkube.oci.auth import credentials_for, parse_challenge

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("python:3.11", "docker.io", "library/python", "3.11", None),
        ("python", "docker.io", "library/python", "latest", None),
        ("team/scorer", "docker.io", "team/scorer", "latest", None),
        (
            "127.0.0.1:5000/mlkube/environments:build-x",
            "127.0.0.1:5000",
            "mlkube/environments",
            "build-x",
            None,
        ),
        ("localhost/a/b", "localhost", "a/b", "latest", None),
        (f"registry.example/team/scorer:2.1@{D}", "registry.example", "team/scorer", "2.1", D),
        (f"registry.example:443/s@{D}", "registry.example:443", "s", None, D),
    ],
)
def test_parse_reference(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )
    assert ref.ref == (digest or tag)


def test_reference_round_trip_and_api_host() -> None:
    assert str(parse("reg.io/a/b:1")) == "reg.io/a/b:1"
    assert str(parse("reg.io/a/b:1").with_digest(D)) == f"reg.io/a/b@{D}"
    assert parse("python").api_host == "registry-1.docker.io"


@pytest.mark.parametrize("text", ["Reg.io/UPPER/x:1", "reg.io/a@sha256:abc", "reg.io/a:-bad", ""])
def test_invalid_references_are_refused(text: str) -> None:
    with pytest.raises(InvalidReference):
        parse(text)


def test_docker_config_auth_forms_and_hub_aliases() -> None:
    auth = base64.b64encode(b"user:pa:ss").decode()
    doc = {
        "auths": {
            "https://index.docker.io/v1/": {"auth": auth},
            "http://reg.local:5000/v2/": {"username": "u2", "password": "p2"},
            "ghcr.io": {"identitytoken": "x"},
        }
    }
    creds = parse_docker_config(json.dumps(doc))
    assert set(creds) == {"docker.io", "reg.local:5000"}
    assert (creds["docker.io"].username, creds["docker.io"].password) == ("user", "pa:ss")
    assert credentials_for(creds, "registry-1.docker.io") == creds["docker.io"]
    assert creds["reg.local:5000"].basic() == "Basic " + base64.b64encode(b"u2:p2").decode()
    assert "p2" not in repr(creds)
    with pytest.raises(OciError, match="not JSON"):
        parse_docker_config("{")


def test_parse_challenges() -> None:
    bearer = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/python:pull"'
    )
    assert bearer.scheme == "bearer"
    assert bearer.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/python:pull",
    }
    assert parse_challenge('Basic realm="mlkube-test"').scheme == "basic"


def test_registry_errors_do_not_carry_presigned_urls() -> None:
    """A blob GET redirected to object storage fails: the message (which reaches the
    Environment's status and the build pod's termination message) has no signature."""
    from mlkube.oci.transport import Response, _error

    url = "https://user:pw@bucket.s3.example/blobs/x?X-Amz-Signature=secret&X-Amz-Credential=k"
    err = _error("GET", url, Response(403, {}, b"denied", url))
    assert "secret" not in str(err) and "pw" not in str(err)
    assert "GET https://bucket.s3.example/blobs/x: HTTP 403" in str(err)
