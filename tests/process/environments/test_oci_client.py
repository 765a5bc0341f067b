"""mlkube.oci against a real distribution v3 registry process: tags, digests, platforms,
uploads (monolithic and chunked), cross-repository mounts, Basic auth from a docker config,
and plain HTTP only for registries configured insecure."""

import base64
import json
from pathlib import Path

import pytest

from mlkube.oci import (
    Client,
    Credentials,
    NoMatchingPlatform,
    NotFound,
    RegistryUnreachable,
    Unauthorized,
    load_docker_config,
    parse,
    sha256_digest,
)
from mlkube.oci import mediatypes as mt
from support.oci_images import push_image, push_index, tar_gz
from support.registry import TEST_PASSWORD as PASSWORD
from support.registry import TEST_USER as USER
from support.registry import Registry, running_registry
from support.registry_token import running_token_service


def client_for(reg: Registry, **kwargs: object) -> Client:
    return Client(insecure=[reg.host], **kwargs)  # type: ignore[arg-type]


def test_tag_resolves_to_the_pushed_digest_and_reads_back(registry: Registry) -> None:
    client = client_for(registry)
    pinned = push_image(client, f"{registry.host}/t/base:1", [{"etc/hello": b"hi\n"}])
    head = client.head_manifest(parse(f"{registry.host}/t/base:1"))
    assert head is not None and head.digest == pinned.digest
    assert head.media_type == mt.OCI_MANIFEST
    assert client.resolve(parse(f"{registry.host}/t/base:1")) == pinned
    image = client.get_image(parse(f"{registry.host}/t/base:1"))
    assert image.reference.digest == pinned.digest and image.index_digest is None
    config = json.loads(client.get_blob(image.reference, image.config.digest))
    assert config["config"]["Labels"] == {"base": "1"}
    [layer] = image.layers
    blob, _ = tar_gz({"etc/hello": b"hi\n"})
    assert client.get_blob(image.reference, layer.digest) == blob


def test_unknown_tag_is_none_on_head_and_not_found_on_resolve(registry: Registry) -> None:
    client = client_for(registry)
    assert client.head_manifest(parse(f"{registry.host}/t/nothing:1")) is None
    with pytest.raises(NotFound, match="not found"):
        client.resolve(parse(f"{registry.host}/t/nothing:1"))


def test_docker_v2_manifest_keeps_its_media_type(registry: Registry) -> None:
    client = client_for(registry)
    pinned = push_image(client, f"{registry.host}/t/docker:1", [{"a": b"a"}], docker=True)
    image = client.get_image(parse(f"{registry.host}/t/docker:1"))
    assert image.manifest.media_type == mt.DOCKER_MANIFEST
    assert image.reference == pinned
    assert image.layers[0].media_type == mt.DOCKER_LAYER_GZIP


def test_index_resolves_to_the_index_and_images_pick_linux_amd64(registry: Registry) -> None:
    client = client_for(registry)
    repo = f"{registry.host}/t/multi"
    amd = push_image(client, f"{repo}:amd", [{"arch": b"amd64"}])
    arm = push_image(client, f"{repo}:arm", [{"arch": b"arm64"}], architecture="arm64")
    index = push_index(client, f"{repo}:1", {"arm64": arm, "amd64": amd})
    assert client.resolve(parse(f"{repo}:1")).digest == index.digest  # what nodes pull
    image = client.get_image(parse(f"{repo}:1"))
    assert image.index_digest == index.digest
    assert image.reference.digest == amd.digest
    only_arm = push_index(client, f"{repo}:armonly", {"arm64": arm})
    with pytest.raises(NoMatchingPlatform, match="linux/amd64"):
        client.get_image(only_arm)


def test_chunked_upload_and_cross_repository_mount(registry: Registry) -> None:
    client = client_for(registry, chunk_size=1000)
    data = bytes(range(256)) * 20  # 5120 bytes: six PATCH chunks
    digest = sha256_digest(data)
    src = parse(f"{registry.host}/t/chunks:x")
    client.upload_blob(src, digest, data)
    assert client.get_blob(src, digest) == data
    dst = parse(f"{registry.host}/t/other:x")
    assert not client.blob_exists(dst, digest)
    assert client.mount_blob(dst, digest, src.repository) is True
    assert client.get_blob(dst, digest) == data
    missing = sha256_digest(b"never uploaded")
    assert client.mount_blob(dst, missing, src.repository) is False  # registry offers an upload


def test_basic_auth_with_docker_config_credentials(auth_registry: Registry, tmp_path: Path) -> None:
    ref = f"{auth_registry.host}/t/private:1"
    with pytest.raises(Unauthorized, match="username and password"):
        client_for(auth_registry).head_manifest(parse(ref))
    wrong = tmp_path / "wrong.json"
    wrong.write_text(
        json.dumps({"auths": {auth_registry.host: {"username": USER, "password": "x"}}})
    )
    with pytest.raises(Unauthorized, match="401"):
        Client(credentials=load_docker_config(wrong), insecure=[auth_registry.host]).head_manifest(
            parse(ref)
        )
    secret = tmp_path / "secret"  # a mounted kubernetes.io/dockerconfigjson Secret
    secret.mkdir()
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (secret / ".dockerconfigjson").write_text(
        json.dumps({"auths": {f"http://{auth_registry.host}/v2/": {"auth": auth}}})
    )
    client = Client(credentials=load_docker_config(secret), insecure=[auth_registry.host])
    pinned = push_image(client, ref, [{"secret": b"1"}])
    assert client.resolve(parse(ref)) == pinned
    assert "s3cret" not in repr(load_docker_config(secret))


def test_plain_http_only_for_insecure_registries(registry: Registry) -> None:
    with pytest.raises(RegistryUnreachable):
        Client(timeout=5).head_manifest(parse(f"{registry.host}/t/base:1"))


def test_bearer_token_challenge(registry_bin: str, tmp_path: Path) -> None:
    with (
        running_token_service(tmp_path, USER, PASSWORD) as tokens,
        running_registry(binary=registry_bin, token=tokens) as reg,
    ):
        ref = f"{reg.host}/team/scorer:1"
        creds = {reg.host: Credentials(USER, PASSWORD)}
        client = Client(credentials=creds, insecure=[reg.host])
        pinned = push_image(client, ref, [{"bearer": b"1"}])
        assert client.resolve(parse(ref)) == pinned
        assert (USER, ["repository:team/scorer:pull,push"]) in tokens.requests
        anonymous = Client(insecure=[reg.host])  # a token with pull only: reads work
        assert anonymous.resolve(parse(ref)) == pinned
        assert (None, ["repository:team/scorer:pull"]) in tokens.requests
        with pytest.raises(Unauthorized):
            anonymous.upload_blob(parse(ref), sha256_digest(b"x"), b"x")
        src = parse(ref)
        [layer] = client.get_image(src).layers
        assert client.mount_blob(parse(f"{reg.host}/team/other:1"), layer.digest, src.repository)
        assert (
            USER,
            ["repository:team/other:pull,push", "repository:team/scorer:pull"],
        ) in tokens.requests
        bad = Client(credentials={reg.host: Credentials(USER, "nope")}, insecure=[reg.host])
        with pytest.raises(Unauthorized, match="token service"):
            bad.resolve(parse(ref))
