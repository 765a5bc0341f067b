"""One index's scoring settings: everything a worker process needs, picklable for spawn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlkube.builders.batch_resume import digest_settings

EXIT_THRESHOLD = 42  # error threshold exceeded: podFailurePolicy FailJob
EXIT_BAD_INPUT = 43  # bad plan, config, model or input: FailJob, no retry


@dataclass(frozen=True)
class ScoreConfig:
    output_uri: str
    model_path: str
    framework: str | None = None
    entrypoint: str | None = None
    init_function: str = "init"  # the scoring script's functions (BatchEntrypoint)
    run_function: str = "run"
    output_format: str = "csv"
    index: int = 0
    indexes: int = 1
    plan_digest: str | None = None  # when set, a plan with another digest is refused (exit 43)
    model_digest: str = ""
    concurrency: int = 1
    timeout_seconds: float = 30.0
    max_retries: int = 3
    error_threshold: int = -1
    chunk_rows: int = 65_536
    init_timeout_seconds: float = 600.0  # model load or init(): not part of the mini-batch timeout

    def settings_digest(self, mini_batch_size: dict[str, Any]) -> str:
        """What shapes a part besides the model: reused parts must agree on all of it."""
        settings: dict[str, Any] = {
            "miniBatchSize": mini_batch_size,
            "outputFormat": self.output_format,
            "entrypoint": self.entrypoint or "",
            "framework": self.framework or "",
        }
        # Other functions score differently; the defaults stay out so digests of parts
        # written before these settings existed still match.
        if self.entrypoint and (self.init_function, self.run_function) != ("init", "run"):
            settings["functions"] = [self.init_function, self.run_function]
        return digest_settings(settings)
