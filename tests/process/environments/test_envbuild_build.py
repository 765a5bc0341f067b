"""install then push, as the build pod runs them: a wheel from a local find-links directory
installed into a layer, appended to a base image, and found in the pushed image."""

import json
import subprocess
import sys
from pathlib import Path

from mlkube.envbuild import contract
from mlkube.oci import Client, parse
from support.oci_images import build_wheel, layer_content, layer_files, push_image
from support.registry import Registry

KEY = "sha256:" + "cd" * 32


def test_install_then_push_puts_the_wheel_in_the_image(registry: Registry, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    build_wheel(wheels, "lgbmish", "4.5.0", {"lgbmish/__init__.py": "NAME = 'lgbmish'\n"})
    spec = tmp_path / "build.json"
    spec.write_text(
        json.dumps(
            {
                "pip": ["lgbmish==4.5.0"],
                "pipSettings": {"noIndex": True, "findLinks": [str(wheels)]},
                "env": [{"name": "OMP_NUM_THREADS", "value": "1"}],
            }
        )
    )
    layer, work = tmp_path / "layer", tmp_path / "work"
    common = ["--layer", str(layer), "--work", str(work)]
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlkube.envbuild.install",
            "--spec",
            str(spec),
            *common,
            "--termination-log",
            str(tmp_path / "install-log"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    client = Client(insecure=[registry.host])
    base = push_image(client, f"{registry.host}/base/build:1", [{"etc/base": b"b"}])
    push = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlkube.envbuild.push",
            *common,
            "--base",
            str(base),
            "--repository",
            f"{registry.host}/mlkube/environments",
            "--build-key",
            KEY,
            "--environment",
            "lgbm:1",
            "--spec",
            str(spec),
            "--insecure",
            registry.host,
            "--termination-log",
            str(tmp_path / "push-log"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert push.returncode == 0, push.stdout + push.stderr
    result = json.loads((tmp_path / "push-log").read_text())
    packages = contract.find_packages(push.stdout)
    assert packages is not None and "lgbmish==4.5.0" in packages
    assert result["serving"]["compatible"] is True
    assert result["python"] == ".".join(map(str, sys.version_info[:3]))

    image = client.get_image(parse(str(result["image"])))
    config = json.loads(client.get_blob(image.reference, image.config.digest))
    assert "OMP_NUM_THREADS=1" in config["config"]["Env"]
    label = config["config"]["Labels"][contract.LABEL_PACKAGES]
    assert contract.decode_packages(label) == packages
    blob = client.get_blob(image.reference, image.layers[-1].digest)
    site = json.loads((work / contract.REPORT_FILE).read_text())["siteDirs"][0].lstrip("/")
    assert layer_content(blob, f"{site}/lgbmish/__init__.py") == b"NAME = 'lgbmish'\n"
    assert f"{site}/lgbmish-4.5.0.dist-info/METADATA" in layer_files(blob)
