"""Map a method and path to a protocol handler, without regexes (this runs on every request).

Paths served:
  V2:     GET /v2, /v2/health/{live,ready}, /v2/models/{m}[/versions/{v}][/ready]
          POST /v2/models/{m}[/versions/{v}]/infer
  V1:     GET /v1/models, /v1/models/{m};  POST /v1/models/{m}:predict
  Seldon: POST /api/v1.0/predictions (and /predict)
  Azure:  POST /score;  GET / (liveness)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mlkube_serving.errors import MethodNotAllowed, RouteNotFound
from mlkube_serving.protocols import Call, Reply, azureml, seldon, v1, v2

Handler = Callable[[Call], Reply]
PREDICT_SUFFIX = ":predict"


@dataclass(frozen=True, slots=True)
class Route:
    """A resolved request: handler, protocol label for metrics, and path parameters."""

    handler: Handler
    protocol: str
    inference: bool = False
    model: str | None = None
    version: str | None = None


def _expect(method: str, wanted: str, route: Route) -> Route:
    if method != wanted:
        raise MethodNotAllowed(f"{method} is not allowed here; use {wanted}")
    return route


def _resolve_v2(method: str, parts: list[str]) -> Route:
    count = len(parts)
    if count == 2:
        return _expect(method, "GET", Route(v2.server_metadata, "v2"))
    if count == 4 and parts[2] == "health":
        if parts[3] == "live":
            return _expect(method, "GET", Route(v2.server_live, "health"))
        if parts[3] == "ready":
            return _expect(method, "GET", Route(v2.server_ready, "health"))
    if count >= 4 and parts[2] == "models" and parts[3]:
        model, rest, version = parts[3], parts[4:], None
        if len(rest) >= 2 and rest[0] == "versions" and rest[1]:
            version, rest = rest[1], rest[2:]
        if not rest:
            return _expect(method, "GET", Route(v2.model_metadata, "v2", False, model, version))
        if rest == ["infer"]:
            return _expect(method, "POST", Route(v2.infer, "v2", True, model, version))
        if rest == ["ready"]:
            return _expect(method, "GET", Route(v2.model_ready, "v2", False, model, version))
    raise RouteNotFound(f"no V2 endpoint at /{'/'.join(parts[1:])}")


def _resolve_v1(method: str, parts: list[str]) -> Route:
    if len(parts) == 3 and parts[2] == "models":
        return _expect(method, "GET", Route(v1.list_models, "v1"))
    if len(parts) == 4 and parts[2] == "models" and parts[3]:
        name = parts[3]
        if name.endswith(PREDICT_SUFFIX) and len(name) > len(PREDICT_SUFFIX):
            model = name[: -len(PREDICT_SUFFIX)]
            return _expect(method, "POST", Route(v1.predict, "v1", True, model))
        return _expect(method, "GET", Route(v1.model_status, "v1", False, name))
    raise RouteNotFound(f"no V1 endpoint at /{'/'.join(parts[1:])}")


def resolve(method: str, path: str) -> Route:
    """Return the route for a request or raise RouteNotFound / MethodNotAllowed."""
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    parts = path.split("/")
    head = parts[1] if len(parts) > 1 else ""
    if head == "v2":
        return _resolve_v2(method, parts)
    if head == "v1":
        return _resolve_v1(method, parts)
    if path in ("/api/v1.0/predictions", "/predict"):
        return _expect(method, "POST", Route(seldon.predict, "seldon", True))
    if path == "/score":
        return _expect(method, "POST", Route(azureml.score, "azureml", True))
    if path == "/":
        return _expect(method, "GET", Route(v2.server_live, "health"))
    raise RouteNotFound(f"no endpoint at {path}")
