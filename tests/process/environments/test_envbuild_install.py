"""install.py for real: pip from a local find-links directory into a layer (no network), the
base's packages satisfying requirements, whiteouts for a replaced distribution, files, conda
checks, the report; apt from a local flat repository as a non-root user; the packaging fetch.

The "base image" is this interpreter plus a directory on PYTHONPATH holding the base's own
distributions (installed there with pip --target from wheels built here).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mlkube.builders.environment_build_spec import parse_packages, parse_termination
from mlkube.envbuild import contract
from mlkube.storage import compute_digest
from support.oci_images import build_wheel

INSTALL = [sys.executable, "-m", "mlkube.envbuild.install"]


def wheelhouse(dest: Path) -> Path:
    build_wheel(dest, "tinydep", "0.1", {"tinydep/__init__.py": "V = 1\n"})
    build_wheel(
        dest,
        "tinyapp",
        "1.0",
        {"tinyapp/__init__.py": "import tinydep\n"},
        requires=("tinydep>=0.1",),
    )
    build_wheel(
        dest,
        "tinyold",
        "0.1",
        {"tinyold/__init__.py": "V = 1\n", "tinyold/gone.py": "OLD = True\n"},
    )
    build_wheel(dest, "tinyold", "0.2", {"tinyold/__init__.py": "V = 2\n"})
    return dest


def base_site(tmp: Path, wheels: Path) -> Path:
    site = tmp / "base-site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-index",
            "--find-links",
            str(wheels),
            "--target",
            str(site),
            "--no-compile",
            "--disable-pip-version-check",
            "-q",
            "tinydep==0.1",
            "tinyold==0.1",
        ],
        check=True,
        capture_output=True,
    )
    return site


def run_install(
    tmp: Path,
    spec: dict[str, object],
    *,
    env: dict[str, str] | None = None,
    argv: list[str] | None = None,
    user: list[str] | None = None,
) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    layer, work = tmp / "layer", tmp / "work"
    spec_file = tmp / "build.json"
    spec_file.write_text(json.dumps(spec))
    cmd = [
        *(user or []),
        *(argv or INSTALL),
        "--spec",
        str(spec_file),
        "--layer",
        str(layer),
        "--work",
        str(work),
        "--termination-log",
        str(tmp / "termination-log"),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )
    return proc, layer, work


def test_pip_installs_only_what_the_base_lacks_and_whiteouts_replacements(tmp_path: Path) -> None:
    wheels = wheelhouse(tmp_path / "wheels")
    site = base_site(tmp_path, wheels)
    spec = {
        "pip": ["tinyapp==1.0", "tinyold==0.2"],
        "pipSettings": {"noIndex": True, "findLinks": [str(wheels)]},
        "files": [{"path": "/opt/app/features.py", "content": "F = 1\n", "mode": 0o640}],
        "env": [{"name": "OMP_NUM_THREADS", "value": "1"}],
    }
    proc, layer, work = run_install(tmp_path, spec, env={"PYTHONPATH": str(site)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((work / contract.REPORT_FILE).read_text())
    assert report["installed"] == ["tinyapp==1.0", "tinyold==0.2"]  # tinydep: the base has it
    [site_dir] = report["siteDirs"]
    assert site_dir.startswith(sys.prefix) and report["pythonPath"] == []
    in_layer = layer / site_dir.lstrip("/")
    assert (in_layer / "tinyapp/__init__.py").exists()
    assert (in_layer / "tinyold/__init__.py").read_text() == "V = 2\n"
    assert not (in_layer / "tinydep").exists()
    assert not list(in_layer.rglob("*.pyc"))  # --no-compile
    hidden = layer / str(site).lstrip("/")
    assert (hidden / ".wh.tinyold-0.1.dist-info").exists()
    assert (hidden / "tinyold/.wh.gone.py").exists()
    # the old version lives in another site directory (earlier on sys.path): all of it hidden
    assert (hidden / "tinyold/.wh.__init__.py").exists()
    old = ["tinyold-0.1.dist-info", "tinyold/__init__.py", "tinyold/gone.py"]
    assert sorted(report["whiteouts"]) == [f"{site}/{path}" for path in old]
    packages = report["packages"]
    assert {"tinyapp==1.0", "tinydep==0.1", "tinyold==0.2"} <= set(packages)
    assert "tinyold==0.1" not in packages
    assert report["python"] == ".".join(map(str, sys.version_info[:3]))
    assert report["serving"]["compatible"] is True  # this interpreter has mlkube_serving
    features = layer / "opt/app/features.py"
    assert features.read_text() == "F = 1\n" and (features.stat().st_mode & 0o777) == 0o640


def test_conda_packages_and_python_mismatch_fail_with_reasons(tmp_path: Path) -> None:
    conda = {"dependencies": ["python=3.11", "pip", "numpy=1.26", {"pip": ["x"]}]}
    proc, _, _ = run_install(tmp_path / "a", {"conda": conda})
    assert proc.returncode == 1
    message = json.loads((tmp_path / "a/termination-log").read_text())
    assert message["reason"] == "CondaPackagesUnsupported" and "numpy=1.26" in message["error"]
    proc, _, _ = run_install(tmp_path / "b", {"conda": {"dependencies": ["python=2.7"]}})
    assert proc.returncode == 1 and "PythonMismatch" in proc.stderr
    assert "python=2.7" in proc.stderr


def test_probe_with_the_tools_copied_alone_and_no_site_packages(tmp_path: Path) -> None:
    from mlkube.envbuild.copy_tools import copy_tools

    script = copy_tools(str(tmp_path / "tools"))
    # The host's system Python (no mlkube) with -I -S: stdlib only, like a bare base image.
    argv = ["/usr/bin/python3", "-I", "-S", script]
    spec = {"files": [{"path": "etc/motd", "content": "hello\n", "mode": "0644"}]}
    proc, layer, work = run_install(tmp_path, spec, argv=argv)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((work / contract.REPORT_FILE).read_text())
    assert report["files"] == ["/etc/motd"] and (layer / "etc/motd").read_text() == "hello\n"
    assert report["serving"]["compatible"] is False
    assert "mlkube_serving" in report["serving"]["message"]


def test_fetch_model_verifies_the_digest(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.onnx").write_bytes(b"onnx-bytes")
    digest = compute_digest(model.as_uri()).digest
    base = [
        sys.executable,
        "-m",
        "mlkube.envbuild.fetch_model",
        "--uri",
        model.as_uri(),
        "--name",
        "iris-3",
        "--work",
        str(tmp_path / "work"),
        "--termination-log",
        str(tmp_path / "log"),
    ]
    ok = subprocess.run(
        [*base, "--digest", digest, "--layer", str(tmp_path / "l1")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "l1/opt/mlkube/model/model.onnx").read_bytes() == b"onnx-bytes"
    record = json.loads((tmp_path / "work" / contract.MODEL_REPORT_FILE).read_text())
    assert record["digest"] == digest and record["name"] == "iris-3"
    bad = subprocess.run(
        [*base, "--digest", "sha256:" + "0" * 64, "--layer", str(tmp_path / "l2")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and "ModelFetchFailed" in bad.stderr
    assert not (tmp_path / "l2/opt/mlkube/model/model.onnx").exists()
    assert json.loads((tmp_path / "log").read_text())["reason"] == "ModelFetchFailed"


def _deb(repo: Path, work: Path, name: str, depends: str, files: dict[str, str]) -> None:
    root = work / name
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        f"Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.com>\n"
        f"Depends: {depends}\nDescription: test package\n"
    )
    for path, content in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(content)
    subprocess.run(
        ["dpkg-deb", "--build", "--root-owner-group", str(root), str(repo / f"{name}_1.0_all.deb")],
        check=True,
        capture_output=True,
    )


def test_apt_packages_unpacked_by_a_non_root_user() -> None:
    # Not pytest's tmp_path: its parents are 0700, closed to the non-root build user.
    tmp_path = Path(tempfile.mkdtemp(prefix="mlkube-apt-"))
    tmp_path.chmod(0o755)
    try:
        _apt_build(tmp_path)
    finally:
        shutil.rmtree(tmp_path)


def _apt_build(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _deb(repo, tmp_path / "src", "mlkube-tinylib", "libc6", {"usr/lib/tinylib/lib.txt": "lib\n"})
    _deb(
        repo,
        tmp_path / "src",
        "mlkube-tinytool",
        "mlkube-tinylib, libc6",
        {"usr/bin/tinytool": "#!/bin/sh\n"},
    )
    packages = subprocess.run(
        ["dpkg-scanpackages", "--multiversion", "."],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    (repo / "Packages").write_text(packages)
    build = tmp_path / "build"
    for sub in ("", "layer", "work"):
        (build / sub).mkdir(exist_ok=True)
    user: list[str] = []
    if os.geteuid() == 0:  # the build pod runs as 65532: so does this
        user = ["setpriv", "--reuid", "65532", "--regid", "65532", "--clear-groups"]
        for path in (build, build / "layer", build / "work"):
            os.chown(path, 65532, 65532)
    spec = {"apt": ["mlkube-tinytool"], "aptSources": [f"deb [trusted=yes] file:{repo} ./"]}
    from mlkube.envbuild.copy_tools import copy_tools

    script = copy_tools(str(tmp_path / "tools"))
    proc, layer, work = run_install(
        build, spec, user=user, env={"HOME": "/tmp"}, argv=["/usr/bin/python3", "-I", "-S", script]
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((work / contract.REPORT_FILE).read_text())
    # the missing dependency comes too; libc6, which the host (the "base") has, does not
    assert report["apt"] == ["mlkube-tinylib=1.0", "mlkube-tinytool=1.0"]
    assert (layer / "usr/bin/tinytool").read_text() == "#!/bin/sh\n"
    assert (layer / "usr/lib/tinylib/lib.txt").exists()
    assert not list(layer.rglob("libc.so*"))


def test_a_distro_python_base_installs_where_its_sys_path_looks(tmp_path: Path) -> None:
    """The host's Debian python3 as the base: its patched pip puts --prefix installs under
    …/local/lib/python3.X/dist-packages; the report finds them and needs no PYTHONPATH."""
    wheels = wheelhouse(tmp_path / "wheels")
    spec = {"pip": ["tinyapp==1.0"], "pipSettings": {"noIndex": True, "findLinks": [str(wheels)]}}
    script = str(Path(__file__).resolve().parents[3] / "operator/mlkube/envbuild/install.py")
    proc, layer, work = run_install(tmp_path, spec, argv=["/usr/bin/python3", script])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((work / contract.REPORT_FILE).read_text())
    assert report["installed"] == ["tinyapp==1.0", "tinydep==0.1"]
    [site] = report["siteDirs"]
    assert site in report["sysPath"] and report["pythonPath"] == []
    assert (layer / site.lstrip("/") / "tinyapp/__init__.py").exists()
    assert {"tinyapp==1.0", "tinydep==0.1"} <= set(report["packages"])


def test_probe_reports_the_base_without_installing(tmp_path: Path) -> None:
    """`image:` environments: --probe only reports (packages, Python, serving contract)."""
    wheels = wheelhouse(tmp_path / "wheels")
    site = base_site(tmp_path, wheels)
    spec = {"pip": ["tinyapp==1.0"], "pipSettings": {"noIndex": True, "findLinks": [str(wheels)]}}
    proc, layer, work = run_install(
        tmp_path, spec, env={"PYTHONPATH": str(site)}, argv=[*INSTALL, "--probe"]
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((work / contract.REPORT_FILE).read_text())
    assert report["installed"] == [] and not any(layer.iterdir())
    assert {"tinydep==0.1", "tinyold==0.1"} <= set(report["packages"])
    assert "tinyapp==1.0" not in report["packages"]
    assert report["serving"]["compatible"] is True and report["serving"]["version"] == "0.1.0"
    # What the operator reads back: the termination message and the package log line.
    message = parse_termination((tmp_path / "termination-log").read_text())
    assert message is not None and message["python"] == report["python"]
    assert message["serving"]["compatible"] is True
    assert parse_packages(proc.stdout) == report["packages"]
