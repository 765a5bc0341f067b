"""mlkube.envbuild's pure parts: conda reading, contract encodings, the appended config."""

from pathlib import Path

from mlkube.envbuild import conda, contract, imageconfig
from mlkube.envbuild.layer import write_layer
from mlkube.envbuild.pipstep import PipSettings


def test_conda_spec() -> None:
    spec = conda.parse(
        {
            "dependencies": [
                "python=3.11",
                "pip",
                "conda-forge::numpy>=1.26",
                {"pip": ["lightgbm==4.5.0"]},
            ]
        }
    )
    assert spec.python == "3.11" and spec.pip == ("lightgbm==4.5.0",)
    assert spec.unsupported == ("conda-forge::numpy>=1.26",)
    assert conda.python_matches("3.11", "3.11.2") and not conda.python_matches("3.12", "3.11.2")
    assert conda.python_matches("3.11.2", "3.11.2") and not conda.python_matches("3.11.1", "3.11.2")
    assert conda.python_matches(None, "3.11.2") and conda.python_matches(">=3.9", "3.11.2")


def test_contract_encodings() -> None:
    assert (
        contract.build_tag("sha256:" + "0123456789abcdef" * 4) == "build-" + "0123456789abcdef" * 2
    )
    label = contract.encode_packages(["b==1", "a==2"])
    assert label == contract.encode_packages(["b==1", "a==2"])  # reproducible (gzip mtime 0)
    assert contract.decode_packages(label) == ["b==1", "a==2"]
    log = "pip output\n" + contract.packages_line(["x==1"]) + "\ndone\n"
    assert contract.find_packages(log) == ["x==1"] and contract.find_packages("nothing") is None


def test_pip_settings_args() -> None:
    args = PipSettings(
        index_url="http://i/simple",
        extra_index_urls=("http://e",),
        find_links=("http://f/",),
        no_index=True,
        trusted_hosts=("i",),
    ).args()
    assert args == [
        "--index-url",
        "http://i/simple",
        "--extra-index-url",
        "http://e",
        "--find-links",
        "http://f/",
        "--no-index",
        "--trusted-host",
        "i",
    ]


def test_new_config_appends_and_is_deterministic() -> None:
    base = {
        "created": "2026-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/bin", "A=1"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:1"]},
        "history": [{}],
    }
    made = imageconfig.new_config(
        base, diff_id="sha256:2", env={"A": "2", "B": "3"}, labels={"l": "v"}, created_by="x"
    )
    assert made["rootfs"]["diff_ids"] == ["sha256:1", "sha256:2"]
    assert made["config"]["Env"] == ["PATH=/bin", "A=2", "B=3"]
    assert made["config"]["Labels"] == {"l": "v"} and made["history"][1]["created_by"] == "x"
    assert made["created"] == made["history"][1]["created"] == base["created"]
    assert base["rootfs"]["diff_ids"] == ["sha256:1"]  # the base is not modified
    again = imageconfig.new_config(
        base, diff_id="sha256:2", env={"A": "2", "B": "3"}, labels={"l": "v"}, created_by="x"
    )
    assert imageconfig.canonical(made) == imageconfig.canonical(again)


def test_layer_keeps_links_and_whiteouts(tmp_path: Path) -> None:
    import gzip
    import io
    import tarfile

    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a/file").write_text("x")
    (root / "a/hard").hardlink_to(root / "a/file")
    (root / "a/link").symlink_to("file")
    (root / "a/.wh.old").touch()
    blob = write_layer(str(root), str(tmp_path / "l.tgz"))
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress((tmp_path / "l.tgz").read_bytes()))) as t:
        members = {m.name: m for m in t.getmembers()}
    assert list(members) == ["a", "a/.wh.old", "a/file", "a/hard", "a/link"]
    assert members["a/hard"].islnk() and members["a/hard"].linkname == "a/file"
    assert members["a/link"].issym() and members["a/link"].linkname == "file"
    assert blob.files == 5 and blob.size == (tmp_path / "l.tgz").stat().st_size
