"""`mlkube endpoint` against the real API server and operator; `invoke` hits a loopback server
standing in for the router (cluster DNS does not resolve outside a cluster, hence --url)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner

from mlkube.cli.main import main
from mlkube.contract import API_VERSION
from mlkube.devcluster import Cluster
from mlkube.k8s import Kube
from support.endpoints import blue_green_spec, create_ready_models, endpoint_object
from support.waiting import wait_for

EP = "credit"


class Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        Recorder.seen.append({"path": self.path, "headers": headers, "body": body})
        answer = json.dumps(
            {"predictions": [1], "served_by": self.headers.get("x-mlkube-deployment")}
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def fake_router() -> Iterator[str]:
    Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_endpoint_cli_round_trip(
    cluster: Cluster,
    kube: Kube,
    namespace: str,
    tmp_path: Path,
    running_operator: KopfRunner,
    fake_router: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    create_ready_models(kube, namespace, tmp_path)
    manifest = tmp_path / "endpoint.yaml"
    doc = endpoint_object(EP, namespace, blue_green_spec(auth={"mode": "key"}))
    del doc["metadata"]["namespace"]  # comes from -n
    manifest.write_text(yaml.safe_dump(doc))
    # An admin kubeconfig: $KUBECONFIG is the operator's own identity while it runs.
    ns = ["-n", namespace, "--kubeconfig", str(cluster.kubeconfig)]

    code, out, err = run(capsys, "endpoint", "create", "-f", str(manifest), "--wait",
                         "--timeout", "30", *ns)  # fmt: skip
    assert code == 0, err
    assert f"is Ready at http://{EP}.{namespace}.svc.cluster.local" in out

    code, out, err = run(capsys, "endpoint", "update", EP, "--traffic", "blue=40,green=60", *ns)
    assert code == 0, err
    assert "traffic blue=70 green=30 \u2192 blue=40 green=60" in out
    code, _, err = run(capsys, "endpoint", "update", EP, "--traffic", "blue=50", *ns)
    assert code == 1
    assert "sum to 100" in err  # the API server's CEL rule, shown as is
    code, _, err = run(capsys, "endpoint", "update", EP, "--traffic", "blue=0,green=100",
                       "--mirror", "blue=10", *ns)  # fmt: skip
    assert code == 0, err
    wait_for(
        lambda: (
            (kube.get(API_VERSION, "OnlineEndpoint", EP, namespace) or {})
            .get("status", {})
            .get("mirror")
            == {"blue": 10}
        ),
        timeout=10,
        interval=0.05,
        what="mirror applied",
    )

    code, out, err = run(capsys, "endpoint", "show", EP, *ns)
    assert code == 0, err
    assert "Traffic:    blue=0 green=100  (applied: blue=0 green=100)" in out
    assert "Mirror:     blue=10" in out
    code, out, _ = run(capsys, "endpoint", "list", *ns)
    assert out.splitlines()[1].startswith(EP)

    code, out, err = run(capsys, "endpoint", "get-credentials", EP, *ns)
    assert code == 0, err
    (key,) = out.split()

    request = tmp_path / "request.json"
    request.write_text('{"data": [[1.0, 2.0]]}')
    code, out, err = run(capsys, "endpoint", "invoke", EP, "--request-file", str(request),
                         "--deployment", "green", "--url", fake_router, *ns)  # fmt: skip
    assert code == 0, err
    assert json.loads(out) == {"predictions": [1], "served_by": "green"}
    (seen,) = Recorder.seen
    assert seen["path"] == "/score"
    assert seen["body"] == b'{"data": [[1.0, 2.0]]}'
    assert seen["headers"]["authorization"] == f"Bearer {key}"
    assert seen["headers"]["x-mlkube-deployment"] == "green"

    code, out, err = run(capsys, "endpoint", "delete", EP, *ns)
    assert code == 0, err
    wait_for(
        lambda: kube.get(API_VERSION, "OnlineEndpoint", EP, namespace) is None,
        timeout=10,
        interval=0.05,
        what="endpoint deleted",
    )
    code, _, err = run(capsys, "endpoint", "show", EP, *ns)
    assert code == 1
    assert "not found" in err
