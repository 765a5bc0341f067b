"""How API failures become CLI messages: a missing object vs a missing CRD vs a refusal."""

import json
from types import SimpleNamespace

from mlkube.cli.kube import _api_error, _is_missing_object


def api_exception(status, body, reason="Not Found"):
    return SimpleNamespace(status=status, reason=reason, body=body)


def test_missing_object_is_not_an_error():
    body = json.dumps({"kind": "Status", "reason": "NotFound", "details": {"name": "m-v1"}})
    assert _is_missing_object(api_exception(404, body))


def test_missing_crd_is_explained():
    exc = api_exception(404, "404 page not found\n")
    assert not _is_missing_object(exc)
    message = str(_api_error(exc, "get Model default/m-v1"))
    assert message.startswith("cannot get Model default/m-v1: the Model CRD")
    assert "models.mlkube.dev/v1alpha1" in message and "not installed" in message


def test_refusals_show_the_server_message():
    body = json.dumps({
        "kind": "Status",
        "reason": "Invalid",
        "message": "spec.version: Invalid value: spec.version is immutable",
        "details": {"name": "m-v1"},
    })  # fmt: skip
    message = str(_api_error(api_exception(422, body, "Unprocessable"), "create Model ns/m-v1"))
    assert message == (
        "cannot create Model ns/m-v1: 422 Invalid: "
        "spec.version: Invalid value: spec.version is immutable"
    )


def test_forbidden_without_json_body():
    message = str(_api_error(api_exception(403, None, "Forbidden"), "list Models in ns"))
    assert message == "cannot list Models in ns: 403 Forbidden"
