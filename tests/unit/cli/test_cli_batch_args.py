"""`mlkube batch` argument handling that fails before any API call, and the scorer steps
`run-local` derives from a job (settings: job overrides > deployment > Azure defaults)."""

from __future__ import annotations

import pytest

from mlkube.cli.main import main
from mlkube.localrun.batch import merge_argv, plan_argv, resolve_run, score_argv


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["invoke", "e", "--input", "s3://b/x", "--mini-batch-size", "5 rows"],
         "error: --mini-batch-size: miniBatchSize '5 rows' is neither N nor Nrows"),
        (["invoke", "e", "--input", "s3://b/x", "--instance-count", "0"],
         "error: --instance-count must be at least 1"),
        (["invoke", "e", "--input", "s3://b/x", "--wait", "0"],
         "error: --wait SECONDS must be positive"),
        (["invoke", "e", "--input", "s3://b/x", "--format", "files",
          "--mini-batch-size", "10rows"], "tabular input format"),
        (["jobs", "resume", "j", "--wait", "-5"], "error: --wait SECONDS must be positive"),
        (["run-local", "job", "-f", "x.yaml"], "error: pass a BatchJob name or -f FILE"),
        (["run-local", "job", "--workers", "0"], "error: --workers must be at least 1"),
        (["run-local", "job", "--model", "/nonexistent/m"], "model path '/nonexistent/m'"),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str],
    message: str,
) -> None:  # fmt: skip
    # A kubeconfig that cannot be reached: these errors must come before any API call.
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    code, err = run(capsys, "batch", *argv)
    assert code == 1
    assert message in err and err.count("\n") == 1


def test_a_missing_file_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "batch", "create", "-f", "/nonexistent/batch.yaml")
    assert code == 1 and err.startswith("error: cannot read /nonexistent/batch.yaml")


DEPLOYMENT = {
    "name": "main", "model": "credit-v1", "miniBatchSize": "1000rows", "instanceCount": 2,
    "maxConcurrencyPerInstance": 3, "errorThreshold": 50,
    "retrySettings": {"maxRetries": 2, "timeoutSeconds": 90},
    "output": {"action": "appendRow", "fileName": "out.jsonl", "format": "jsonl"},
    "entrypoint": {"path": "score.py"}, "loggingLevel": "debug",
    "env": [{"name": "MLKUBE_X", "value": "1"}, {"name": "LD_PRELOAD", "value": "/evil.so"}],
}  # fmt: skip


def test_resolve_run_applies_overrides_over_the_deployment() -> None:
    spec = {"endpoint": "e", "input": {"uri": "s3://b/in/", "format": "csv"},
            "overrides": {"miniBatchSize": 7, "errorThreshold": -1}}  # fmt: skip
    run = resolve_run("j", spec, DEPLOYMENT, "file:///o/", framework="sklearn",
                      model_digest="sha256:m")  # fmt: skip
    assert (run.mini_batch_size, run.error_threshold, run.instance_count) == ("7", -1, 2)
    assert (run.concurrency, run.timeout_seconds, run.max_retries) == (3, 90, 2)
    assert run.env == {"MLKUBE_X": "1", "MLKUBE_LOG_LEVEL": "DEBUG"}
    assert run.dropped_env == ("LD_PRELOAD",)  # never into a process that unpickles a model
    assert plan_argv(run)[-8:] == ["--input", "s3://b/in/", "--output", "file:///o",
                                   "--mini-batch-size", "7", "--format", "csv"]  # fmt: skip
    score = score_argv(run, "/m", 1, 4, "sha256:p")
    assert score[3:6] == ["batch", "--termination-log", ""]
    assert score[6] == "score"
    flags = dict(zip(score[7::2], score[8::2], strict=True))
    assert flags == {
        "--output": "file:///o", "--model": "/m", "--index": "1", "--indexes": "4",
        "--plan-digest": "sha256:p", "--concurrency": "3", "--timeout": "90",
        "--max-retries": "2", "--error-threshold": "-1", "--output-format": "jsonl",
        "--model-digest": "sha256:m", "--entrypoint": "score.py", "--framework": "sklearn",
    }  # fmt: skip
    merge = merge_argv(run)
    assert merge[-8:] == ["--output", "file:///o", "--file-name", "out.jsonl",
                          "--output-format", "jsonl", "--action", "appendRow"]  # fmt: skip


def test_resolve_run_without_an_endpoint_uses_azure_defaults() -> None:
    run = resolve_run("j", {"endpoint": "e", "input": {"uri": "file:///in"}}, None, "file:///o")
    assert (run.mini_batch_size, run.instance_count, run.concurrency) == ("10", 1, 1)
    assert (run.max_retries, run.timeout_seconds, run.error_threshold) == (3, 30, -1)
    assert (run.action, run.file_name, run.output_format) == ("appendRow", "predictions.csv", "csv")
    assert "--entrypoint" not in score_argv(run, "/m", 0, 1, "sha256:p")
