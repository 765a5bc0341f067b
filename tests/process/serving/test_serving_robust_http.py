"""Property test over real HTTP: random bodies never get a 5xx and never kill the server."""

from __future__ import annotations

import orjson
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.serving import ServerProcess, make_data, v2_body

PATHS = ["/v2/models/forest/infer", "/v1/models/forest:predict", "/api/v1.0/predictions", "/score"]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
bodies = st.binary(max_size=200) | json_values.map(orjson.dumps)
session = requests.Session()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(PATHS), body=bodies)
def test_random_bodies_over_http(forest_server: ServerProcess, path: str, body: bytes) -> None:
    answer = session.post(forest_server.url + path, data=body, timeout=5)
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        assert answer.json()["error"]


def test_server_still_serves_after_the_fuzzing(forest_server: ServerProcess) -> None:
    X, _ = make_data()
    answer = session.post(
        f"{forest_server.url}/v2/models/forest/infer", json=v2_body(X[:1]), timeout=5
    )
    assert answer.status_code == 200
    assert forest_server.process.poll() is None
