"""How API failures become CLI messages: a missing CRD vs a refusal."""

from mlkube.cli.kube import _api_error
from mlkube.k8s import ApiError


def test_missing_crd_is_explained() -> None:
    exc = ApiError(404, "KindNotServed", "the API server serves no kind Model")
    message = str(_api_error(exc, "get Model default/m-v1"))
    assert message.startswith("cannot get Model default/m-v1: the Model CRD")
    assert "models.mlkube.dev/v1alpha1" in message and "not installed" in message


def test_refusals_show_the_server_message() -> None:
    exc = ApiError(422, "Invalid", "spec.version: Invalid value: spec.version is immutable")
    message = str(_api_error(exc, "create Model ns/m-v1"))
    assert message == (
        "cannot create Model ns/m-v1: 422 Invalid: "
        "spec.version: Invalid value: spec.version is immutable"
    )


def test_a_missing_object_in_a_refusal_is_not_taken_for_a_missing_crd() -> None:
    message = str(_api_error(ApiError(404, "NotFound", 'models "x" not found'), "label Model ns/x"))
    assert "CRD" not in message and "not found" in message


def test_an_unreachable_server_is_named_once_whatever_wrapped_it() -> None:
    from mlkube.cli.errors import CliError, describe
    from mlkube.k8s import ApiUnreachable

    down = ApiUnreachable("https://127.0.0.1:1", "[Errno 111] Connection refused")
    wrapped = CliError(f"cannot list Models in ns: {down}")
    wrapped.__cause__ = down
    expected = "cannot reach the API server at https://127.0.0.1:1: [Errno 111] Connection refused"
    assert describe(down) == describe(wrapped) == expected
    assert describe(ApiError(403, "Forbidden", "no")) == (
        "the API server refused the request: 403 Forbidden: no"
    )
    assert describe(ValueError("a bug")) is None  # bugs keep their traceback
