"""The default artifact store named in a kubeconfig context (issue 18): built by
`mlkube dev up`, read by the CLI; a malformed one is a clear error, never a silent fallback."""

import pytest

from mlkube.storage.default_store import (
    EXTENSION,
    DefaultStore,
    DefaultStoreError,
    find_default_store,
    with_extension,
)

KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "current-context": "admin@dev",
    "contexts": [
        {"name": "admin@dev", "context": {"cluster": "dev", "user": "admin"}},
        {"name": "other", "context": {"cluster": "prod", "user": "me"}},
    ],
}
STORE = DefaultStore(
    "s3://mlkube-dev", endpoint_url="http://127.0.0.1:9000", access_key_id="k",
    secret_access_key="s", region="us-east-1",
)  # fmt: skip


def test_written_on_the_current_context_and_read_back():
    doc = with_extension(KUBECONFIG, STORE)
    current, other = doc["contexts"]
    assert find_default_store(current) == STORE
    assert find_default_store(other) is None
    assert current["context"]["user"] == "admin"  # the rest of the context is kept
    assert KUBECONFIG["contexts"][0]["context"].get("extensions") is None  # input untouched


def test_rewriting_replaces_the_old_store_and_keeps_other_extensions():
    doc = with_extension(KUBECONFIG, STORE)
    doc["contexts"][0]["context"]["extensions"].append({"name": "x", "extension": {}})
    newer = DefaultStore("s3://other")
    again = with_extension(doc, newer)
    names = [e["name"] for e in again["contexts"][0]["context"]["extensions"]]
    assert sorted(names) == sorted(["x", EXTENSION])
    assert find_default_store(again["contexts"][0]) == newer


def test_client_env_and_holds():
    assert STORE.client_env() == {
        "MLKUBE_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    assert DefaultStore("file:///x").client_env() == {}
    assert STORE.holds("s3://mlkube-dev/default/fraud/1/abc/model.pkl")
    assert STORE.holds("s3://mlkube-dev")
    assert not STORE.holds("s3://mlkube-dev-other/model.pkl")


@pytest.mark.parametrize(
    ("extension", "message"),
    [
        ({}, "needs a string 'uri'"),
        ({"uri": "/local/path"}, "must be a store URI"),
        ({"uri": "s3://b", "accessKeyId": 3}, "accessKeyId must be a string"),
    ],
)
def test_malformed_extension_is_an_error(extension, message):
    context = {"context": {"extensions": [{"name": EXTENSION, "extension": extension}]}}
    with pytest.raises(DefaultStoreError, match=message):
        find_default_store(context)
