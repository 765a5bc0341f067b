"""`mlkube model ...` end to end through `main()`, with an in-memory stand-in for the API
(the real API server is exercised by the integration tier)."""

import json
import os

import pytest
import yaml

from mlkube.cli import main as cli_main
from mlkube.cli import model as model_cmd
from mlkube.cli import stores
from mlkube.storage import compute_digest
from mlkube.storage.default_store import DefaultStore


class FakeModelApi:
    """Stores Model objects by name and evaluates equality / inequality label selectors."""

    def __init__(self):
        self.objects = {}
        self.selectors = []

    def get(self, namespace, name):
        return self.objects.get((namespace, name))

    def list(self, namespace, label_selector=""):
        self.selectors.append(label_selector)
        terms = [t for t in label_selector.split(",") if t]
        return [
            obj
            for (ns, _), obj in sorted(self.objects.items())
            if ns == namespace and all(self._matches(obj, term) for term in terms)
        ]

    @staticmethod
    def _matches(obj, term):
        labels = obj["metadata"].get("labels", {})
        if "!=" in term:
            key, value = term.split("!=")
            return labels.get(key) != value
        key, value = term.split("=")
        return labels.get(key) == value

    def create(self, namespace, body):
        key = (namespace, body["metadata"]["name"])
        assert key not in self.objects
        stored = json.loads(json.dumps(body))
        stored["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
        self.objects[key] = stored
        return stored

    def list_all_namespaces(self):
        return [obj for _, obj in sorted(self.objects.items())]

    def set_labels(self, namespace, name, labels):
        self.objects[(namespace, name)]["metadata"]["labels"].update(labels)
        return self.objects[(namespace, name)]


@pytest.fixture
def default_store(monkeypatch, tmp_path):
    """The store the kubeconfig context names (as `mlkube dev up` writes it); None: none."""
    holder = {"store": DefaultStore((tmp_path / "default-store").as_uri())}
    monkeypatch.setattr(stores, "context_store", lambda kubeconfig, context: holder["store"])
    return holder


@pytest.fixture
def api(monkeypatch, default_store):
    fake = FakeModelApi()
    monkeypatch.setattr(model_cmd, "connect", lambda args: (fake, args.namespace or "default"))
    monkeypatch.delenv("MLKUBE_STORE", raising=False)
    return fake


def run(*argv):
    return cli_main.main(list(argv))


def test_register_without_store_copies_into_the_default_store(api, tmp_path, capsys):
    """Issue 18: it registered the file where it lay; deleting it broke the Model."""
    (tmp_path / "model.pkl").write_bytes(b"weights")
    code = run("model", "register", "--name", "fraud", "--version", "1",
               "--path", str(tmp_path / "model.pkl"))  # fmt: skip
    assert code == 0
    uri = api.objects[("default", "fraud-v1")]["spec"]["artifact"]["uri"]
    assert uri.startswith((tmp_path / "default-store" / "default" / "fraud" / "1").as_uri())
    (tmp_path / "model.pkl").unlink()
    assert compute_digest(uri).size == len(b"weights")


def test_register_without_any_store_is_refused(api, default_store, tmp_path, capsys):
    default_store["store"] = None
    (tmp_path / "model.pkl").write_bytes(b"weights")
    code = run("model", "register", "--name", "fraud", "--version", "1",
               "--path", str(tmp_path / "model.pkl"))  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "no artifact store to copy" in err and "--in-place" in err
    assert api.objects == {}


def test_in_place_and_store_exclude_each_other(api, tmp_path, capsys):
    (tmp_path / "model.pkl").write_bytes(b"weights")
    store = (tmp_path / "s").as_uri()
    code = run("model", "register", "--name", "fraud", "--version", "1", "--in-place",
               "--store", store, "--path", str(tmp_path / "model.pkl"))  # fmt: skip
    assert code == 1
    assert "--in-place and --store exclude each other" in capsys.readouterr().err


def test_register_the_default_stores_credentials_apply_to_it_only(
    api, default_store, tmp_path, monkeypatch
):
    """The context's S3 settings reach the upload when the chosen store lies in it, and
    never when --store names another store (its own environment must stay)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "mine")
    monkeypatch.setenv("MLKUBE_S3_ENDPOINT_URL", "unset")  # restored after the test
    store = (tmp_path / "default-store").as_uri()
    default_store["store"] = DefaultStore(
        store, endpoint_url="http://127.0.0.1:9", access_key_id="dev"
    )
    (tmp_path / "m.pkl").write_bytes(b"w")
    other = (tmp_path / "other").as_uri()
    assert run("model", "register", "--name", "a", "--version", "1", "--store", other,
               "--path", str(tmp_path / "m.pkl")) == 0  # fmt: skip
    assert os.environ["AWS_ACCESS_KEY_ID"] == "mine"
    assert os.environ["MLKUBE_S3_ENDPOINT_URL"] == "unset"
    assert run("model", "register", "--name", "b", "--version", "1",
               "--path", str(tmp_path / "m.pkl")) == 0  # fmt: skip
    assert os.environ["AWS_ACCESS_KEY_ID"] == "dev"
    assert os.environ["MLKUBE_S3_ENDPOINT_URL"] == "http://127.0.0.1:9"


def test_register_in_place_when_asked(api, tmp_path, capsys):
    (tmp_path / "model.pkl").write_bytes(b"weights")
    code = run("model", "register", "--name", "credit-risk", "--version", "3", "--in-place",
               "--path", str(tmp_path / "model.pkl"), "--tag", "team=risk")  # fmt: skip
    assert code == 0
    obj = api.objects[("default", "credit-risk-v3")]
    uri = (tmp_path / "model.pkl").as_uri()
    assert obj["spec"]["artifact"] == {"uri": uri, "digest": compute_digest(uri).digest}
    assert obj["spec"]["framework"] == "sklearn"
    assert obj["metadata"]["labels"]["team"] == "risk"
    out = capsys.readouterr().out
    assert "model.mlkube.dev/credit-risk-v3 created in namespace default" in out
    assert compute_digest(uri).digest in out


def test_register_uploads_folder_to_store(api, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "mlflow-model"
    (folder / "data").mkdir(parents=True)
    (folder / "MLmodel").write_text("flavors: {}\n")
    (folder / "data" / "model.pkl").write_bytes(b"x" * 2000)
    (folder / "score.py").write_text("def init(): ...\ndef run(d): ...\n")
    monkeypatch.setenv("MLKUBE_STORE", (tmp_path / "store").as_uri())
    code = run("model", "register", "--name", "churn", "--version", "1.2.0", "--path",
               str(folder), "-n", "team-a", "--entrypoint", "score.py",
               "--description", "churn model")  # fmt: skip
    assert code == 0
    obj = api.objects[("team-a", "churn-v1-2-0")]
    digest = compute_digest(folder.as_uri()).digest
    expected_uri = (
        tmp_path / "store" / "team-a" / "churn" / "1.2.0" / digest[7:23] / "mlflow-model"
    ).as_uri()
    assert obj["spec"]["artifact"]["uri"] == expected_uri
    assert obj["spec"]["artifact"]["digest"] == compute_digest(expected_uri).digest
    assert obj["spec"]["framework"] == "mlflow"
    assert obj["spec"]["entrypoint"] == {"path": "score.py"}
    assert "100%" in capsys.readouterr().err


def test_register_refuses_existing_version(api, tmp_path, capsys):
    (tmp_path / "m.onnx").write_bytes(b"o")
    args = (
        "model",
        "register",
        "--name",
        "m",
        "--version",
        "1",
        "--path",
        str(tmp_path / "m.onnx"),
    )
    assert run(*args) == 0
    assert run(*args) == 1
    err = capsys.readouterr().err
    assert "error: Model default/m-v1 already exists (model 'm' version '1')" in err


def test_register_refuses_same_labels_under_another_name(api, tmp_path, capsys):
    api.objects[("default", "handmade")] = {
        "metadata": {"name": "handmade",
                     "labels": {"mlkube.dev/model": "m", "mlkube.dev/version": "1"}},
        "spec": {"modelName": "m", "version": "1"},
    }  # fmt: skip
    (tmp_path / "m.onnx").write_bytes(b"o")
    assert run("model", "register", "--name", "m", "--version", "1",
               "--path", str(tmp_path / "m.onnx")) == 1  # fmt: skip
    assert "Model default/handmade already exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "files", "message"),
    [
        ([], {}, "does not exist"),
        ([], {"weights.bin": b""}, "cannot infer the framework"),
        (["--framework", "custom"], {"m.bin": b""}, "entrypoint is required"),
        (["--entrypoint", "score.py"], {"m.pkl": b""}, "needs a folder artifact"),
        (["--name", "Bad_Name"], {"m.pkl": b""}, "characters); try 'bad-name'"),
        (["--tag", "mlkube.dev/x=1"], {"m.pkl": b""}, "reserved prefix"),
    ],
)
def test_register_input_errors(api, tmp_path, capsys, extra, files, message):
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    path = str(tmp_path / next(iter(files))) if files else str(tmp_path / "missing.pkl")
    argv = ["model", "register", "--name", "m", "--version", "1", "--path", path, *extra]
    assert run(*argv) == 1
    assert message in capsys.readouterr().err
    assert api.objects == {}


def test_unknown_framework_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exited:
        run(
            "model", "register", "--name", "m", "--version", "1", "--path", "x", "--framework", "tf"
        )
    assert exited.value.code == 2
    assert "invalid choice: 'tf'" in capsys.readouterr().err


def register_three(api, tmp_path):
    for version in ("1", "2", "10"):
        (tmp_path / f"m{version}.pkl").write_bytes(version.encode())
        stage = "prod" if version == "10" else "dev"
        run("model", "register", "--name", "credit", "--version", version,
            "--path", str(tmp_path / f"m{version}.pkl"), "--tag", f"stage={stage}")  # fmt: skip


def test_list_archive_show(api, tmp_path, capsys):
    register_three(api, tmp_path)
    capsys.readouterr()
    assert run("model", "archive", "credit:1") == 0
    assert "credit-v1 archived" in capsys.readouterr().out
    assert run("model", "list") == 0
    table = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in table] == ["NAME", "credit-v2", "credit-v10"]
    assert api.selectors[-1] == "mlkube.dev/archived!=true"

    assert (
        run("model", "list", "--all", "--name", "credit", "--tag", "stage=dev", "-o", "json") == 0
    )
    listed = json.loads(capsys.readouterr().out)
    assert [item["metadata"]["name"] for item in listed["items"]] == ["credit-v1", "credit-v2"]
    assert api.selectors[-1] == "stage=dev,mlkube.dev/model=credit"

    assert run("model", "show", "credit-v1") == 0
    text = capsys.readouterr().out
    assert "Archived:     yes" in text and "Tags:         stage=dev" in text
    assert run("model", "show", "credit:10", "-o", "yaml") == 0
    assert yaml.safe_load(capsys.readouterr().out)["spec"]["version"] == "10"


def test_show_and_archive_missing(api, capsys):
    assert run("model", "show", "nope") == 1
    assert "error: Model default/nope not found" in capsys.readouterr().err
    assert run("model", "archive", "nope", "-n", "other") == 1
    assert "Model other/nope not found" in capsys.readouterr().err


def test_archive_twice_is_harmless(api, tmp_path, capsys):
    register_three(api, tmp_path)
    assert run("model", "archive", "credit-v2") == 0
    assert run("model", "archive", "credit-v2") == 0
    assert "already archived" in capsys.readouterr().err


def test_register_in_two_namespaces_keeps_both_artifacts(api, tmp_path, monkeypatch):
    # Before: both went to <store>/fraud/1/model.onnx and team-b replaced team-a's bytes.
    monkeypatch.setenv("MLKUBE_STORE", (tmp_path / "store").as_uri())
    for team in ("team-a", "team-b"):
        (tmp_path / team).mkdir()
        (tmp_path / team / "model.onnx").write_bytes(f"{team} weights".encode())
        assert run("model", "register", "--name", "fraud", "--version", "1", "-n", team,
                   "--path", str(tmp_path / team / "model.onnx")) == 0  # fmt: skip
    a = api.objects[("team-a", "fraud-v1")]["spec"]["artifact"]
    b = api.objects[("team-b", "fraud-v1")]["spec"]["artifact"]
    assert "/store/team-a/fraud/1/" in a["uri"] and "/store/team-b/fraud/1/" in b["uri"]
    assert compute_digest(a["uri"]).digest == a["digest"] != b["digest"]


def test_overwrite_is_refused_while_a_model_uses_the_bytes(api, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLKUBE_STORE", (tmp_path / "store").as_uri())
    (tmp_path / "model.onnx").write_bytes(b"weights")
    args = ("model", "register", "--name", "fraud", "--version", "1", "-n", "team-a",
            "--path", str(tmp_path / "model.onnx"))  # fmt: skip
    assert run(*args) == 0
    uri = api.objects[("team-a", "fraud-v1")]["spec"]["artifact"]["uri"]
    # Another team's Model uses the same bytes; the registering team deleted its own Model,
    # and the stored file was damaged (e.g. a partial copy by hand).
    api.objects[("team-b", "borrowed")] = {
        "metadata": {"name": "borrowed", "namespace": "team-b", "labels": {}},
        "spec": {"artifact": {"uri": uri}},
    }
    del api.objects[("team-a", "fraud-v1")]
    stored = tmp_path / "store" / uri.split("/store/", 1)[1]
    stored.write_bytes(b"damaged")
    capsys.readouterr()
    assert run(*args) == 1
    assert "already exists with different bytes" in capsys.readouterr().err
    assert run(*args, "--overwrite") == 1
    assert "used by Model team-b/borrowed" in capsys.readouterr().err
    assert stored.read_bytes() == b"damaged"
    del api.objects[("team-b", "borrowed")]
    assert run(*args, "--overwrite") == 0
    assert stored.read_bytes() == b"weights"
