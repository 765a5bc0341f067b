"""What a step pod refuses, as real processes: an input whose bytes changed, a missing or
malformed output (nothing uploaded, the message names it), a link out of the outputs volume, and
a summary that must still fit the 4 KiB termination message."""

from __future__ import annotations

import json
from pathlib import Path

from tests.process.step.conftest import make_pod, summary_of

from mlkube.builders.pipeline_contract import StepInput
from mlkube.builders.pipeline_summary import MAX_TERMINATION_BYTES, parse_summary
from mlkube.storage import compute_digest


def test_input_digest_mismatch_fails_naming_input_expected_and_actual(
    tmp_path: Path, data_dir: Path
) -> None:
    uri = f"file://{data_dir}"
    recorded = compute_digest(uri).digest
    (data_dir / "a.csv").write_text("x,y\n1,2\n3,5\n")  # one byte changed after resolution
    actual = compute_digest(uri).digest
    pod = make_pod(tmp_path, f"file://{tmp_path}/store/a1", [StepInput("data", uri, recorded)])
    done = pod.inputs()
    assert done.code == 1
    for text in (done.stderr, done.termination):
        assert "input data: digest mismatch" in text
        assert f"expected {recorded}" in text and f"actual {actual}" in text
    assert list((pod.root / "inputs" / "data").rglob("*.csv")) == []  # unverified bytes removed


def test_missing_input_fails_naming_it(tmp_path: Path) -> None:
    digest = "sha256:" + "0" * 64
    gone = StepInput("data", f"file://{tmp_path}/nothing", digest)
    pod = make_pod(tmp_path, f"file://{tmp_path}/store/a1", [gone])
    done = pod.inputs()
    assert done.code == 1 and "input data: artifact not found" in done.termination


def test_missing_outputs_fail_naming_each_and_upload_nothing(tmp_path: Path) -> None:
    outputs = (("model", "artifact"), ("lr", "parameter"), ("other", "artifact"))
    pod = make_pod(tmp_path, f"file://{tmp_path}/store/a1", outputs=outputs)
    assert pod.inputs().code == 0
    script = (
        "import os, pathlib; pathlib.Path(os.environ['MLKUBE_OUTPUT_OTHER'], 'f').write_text('x')"
    )
    main_code, done = pod.run(script)
    assert (main_code, done.code) == (0, 1)
    error = summary_of(done.termination)["error"]
    assert "output model is an empty folder" in error and "output lr is missing" in error
    assert "output model" in done.stderr
    # Nothing uploaded; only the failed summary is stored (the pod may be gone when read).
    store = tmp_path / "store" / "a1"
    assert [p.relative_to(store).as_posix() for p in store.rglob("*")] == [
        "_mlkube", "_mlkube/summary.json",
    ]  # fmt: skip
    assert parse_summary((store / "_mlkube" / "summary.json").read_text()).error == error


def test_bad_metrics_fail_naming_the_output(tmp_path: Path) -> None:
    outputs = (("scores", "metrics"), ("loss", "metrics"), ("lr", "parameter"))
    pod = make_pod(tmp_path, f"file://{tmp_path}/store/a1", outputs=outputs)
    assert pod.inputs().code == 0
    script = (
        "import os, pathlib\n"
        "pathlib.Path(os.environ['MLKUBE_OUTPUT_SCORES']).write_text('{\"auc\": NaN}')\n"
        "pathlib.Path(os.environ['MLKUBE_OUTPUT_LOSS']).write_text('{\"loss\": \"low\"}')\n"
        "pathlib.Path(os.environ['MLKUBE_OUTPUT_LR']).write_bytes(b'\\xff\\xfe')\n"
    )
    main_code, done = pod.run(script)
    assert (main_code, done.code) == (0, 1)
    error = summary_of(done.termination)["error"]
    assert "output scores is not valid JSON: NaN is not a finite number" in error
    assert "output loss: metric 'loss' is 'low', not a number" in error
    assert "output lr is not UTF-8 text" in error


def test_link_out_of_the_outputs_volume_is_refused(tmp_path: Path) -> None:
    """`outputs` holds the store credentials: a link to its own environment must not upload."""
    pod = make_pod(tmp_path, f"file://{tmp_path}/store/a1", outputs=(("model", "artifact"),))
    assert pod.inputs().code == 0
    script = (
        "import os\n"
        "model = os.environ['MLKUBE_OUTPUT_MODEL']\n"
        "open(os.path.join(model, 'ok.txt'), 'w').write('fine')\n"
        "os.symlink('/proc/self/environ', os.path.join(model, 'env'))\n"
    )
    main_code, done = pod.run(script)
    assert (main_code, done.code) == (0, 1)
    assert "output model: env is a symbolic link" in summary_of(done.termination)["error"]
    assert not (tmp_path / "store" / "a1" / "outputs").exists()


def test_summary_fits_4_kib_with_many_long_parameters(tmp_path: Path) -> None:
    names = [f"param-{i:02d}" for i in range(24)]
    outputs = (("model", "artifact"), *((name, "parameter") for name in names))
    pod = make_pod(tmp_path, f"file://{tmp_path}/store/a1", outputs=outputs)
    assert pod.inputs().code == 0
    script = (
        "import os, pathlib\n"
        "pathlib.Path(os.environ['MLKUBE_OUTPUT_MODEL'], 'm.bin').write_bytes(b'm' * 100)\n"
        f"for name in {names!r}:\n"
        "    env = 'MLKUBE_OUTPUT_' + name.upper().replace('-', '_')\n"
        "    pathlib.Path(os.environ[env]).write_text('é' * 512)\n"  # 1 KiB of UTF-8 each
    )
    main_code, done = pod.run(script)
    assert (main_code, done.code) == (0, 0), done.stderr
    fitted = done.termination
    assert len(fitted.encode("utf-8")) <= MAX_TERMINATION_BYTES
    short = parse_summary(fitted)  # still valid JSON, and says it was cut
    assert short.truncated and short.output("model") is not None
    stored = parse_summary((tmp_path / "store/a1/_mlkube/summary.json").read_text())
    assert not stored.truncated
    assert all(stored.output(name).value == "é" * 512 for name in names)  # type: ignore[union-attr]
    assert short.output("model") == stored.output("model")  # the digest survives the cut
    assert json.loads(fitted)["exitCode"] == 0


def test_parameter_over_1_kib_is_refused(tmp_path: Path) -> None:
    pod = make_pod(tmp_path, f"file://{tmp_path}/store/a1", outputs=(("lr", "parameter"),))
    assert pod.inputs().code == 0
    script = (
        "import os, pathlib; pathlib.Path(os.environ['MLKUBE_OUTPUT_LR']).write_text('1' * 1025)"
    )
    main_code, done = pod.run(script)
    assert (main_code, done.code) == (0, 1)
    assert "output lr is larger than" in summary_of(done.termination)["error"]
