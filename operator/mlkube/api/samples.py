"""Sample objects written to crds/samples/ by `hack/generate` (and validated on the way).

Kept as Python data so a sample can never drift from the models: rendering validates each one
with `parse_object`. Artifact URIs are file:// so nothing reaches the network in local runs; the
signature matches the ONNX models `hack/make-sample-models` writes (20 FP32 features).
"""

from __future__ import annotations

from typing import Any

from mlkube import contract

_DATASET_DIGEST = "sha256:" + "3f" * 32


def _model(name: str, version: str, uri: str, description: str) -> dict[str, Any]:
    return {
        "apiVersion": contract.API_VERSION,
        "kind": "Model",
        "metadata": {
            "name": name,
            "labels": {"team": "risk", "stage": "production"},
        },
        "spec": {
            "modelName": "credit-risk",
            "version": version,
            "framework": "onnx",
            "artifact": {"uri": uri},
            "description": description,
            "signature": {
                "inputs": [{"name": "X", "datatype": "FP32", "shape": [-1, 20]}],
                "outputs": [
                    {"name": "label", "datatype": "INT64", "shape": [-1]},
                    {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
                ],
            },
            "lineage": {
                "datasets": [
                    {
                        "name": "applications-2024q2",
                        "uri": "s3://datasets/credit/applications-2024q2.parquet",
                        "digest": _DATASET_DIGEST,
                    }
                ],
                "code": {
                    "repository": "https://git.example.com/risk/credit-models.git",
                    "commit": "9fceb02d0ae598e95dc970b74767f19372d61af8",
                    "path": "train/credit_risk.py",
                },
                "run": {"id": f"credit-risk-train-{version}", "system": "mlflow"},
                "environment": {"image": "ghcr.io/example/credit-train:1.4.2"},
                "parameters": {"C": "1.0", "max_iter": "500"},
                "metrics": {"auc": 0.91, "accuracy": 0.87},
            },
            "properties": {"owner": "risk-team@example.com"},
        },
    }


# The mlkube serving image has /bin/sh, python and scikit-learn (docs/pipelines.md §2).
_STEP_IMAGE = "ghcr.io/mlkube/mlkube-serving:0.1.0"  # DEFAULT_SERVING_IMAGE
# The drift profile of the sample training data (`make dev` builds and uploads it).
SAMPLE_BASELINE_URI = "file:///var/lib/mlkube/baselines/credit-risk/credit-risk.profile.json"


def _pipeline() -> dict[str, Any]:
    """The closed loop: train → evaluate against the serving model → register → canary."""
    return {
        "apiVersion": contract.API_VERSION,
        "kind": "Pipeline",
        "metadata": {"name": "credit-retrain"},
        "spec": {
            "description": "Retrain credit-risk on the latest applications; canary it if better.",
            "parameters": [
                {"name": "C", "type": "number", "default": "1.0"},
            ],
            "steps": [
                {
                    "name": "train",
                    "image": _STEP_IMAGE,
                    "command": ["python"],
                    "args": ["{{inputs.code}}/train.py", "--data", "{{inputs.data}}",
                             "--model-out", "{{outputs.model}}",
                             "--metrics-out", "{{outputs.metrics}}", "--C", "{{parameters.C}}"],
                    # examples/pipelines/credit-retrain/ and the labelled data `make dev`
                    # uploads (devcluster/pipeline_samples.py).
                    "inputs": [
                        {"name": "code", "uri": "file:///var/lib/mlkube/samples/credit-retrain-code/"},
                        {"name": "data", "uri": "file:///var/lib/mlkube/samples/credit-training/"},
                    ],
                    "outputs": [
                        {"name": "model", "type": "artifact"},
                        {"name": "metrics", "type": "metrics"},
                    ],
                    "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}},
                    "retry": {"limit": 2},
                    "timeout": "30m",
                },
                {
                    "name": "evaluate",
                    "type": "evaluate",
                    "evaluate": {
                        "metrics": [
                            {"name": "auc", "from": {"step": "train", "output": "metrics"},
                             "min": 0.8},
                        ],
                        "compareWith": {
                            "endpoint": "credit",
                            "metric": "auc",
                            "from": {"step": "train", "output": "metrics"},
                            "minImprovement": 0.005,
                        },
                    },
                },
                {
                    "name": "register",
                    "type": "registerModel",
                    "dependsOn": ["evaluate"],
                    "registerModel": {
                        "artifact": {"step": "train", "output": "model"},
                        "modelName": "credit-risk",
                        "framework": "sklearn",
                        "metricsFrom": [{"step": "train", "output": "metrics"}],
                        "tags": {"team": "risk"},
                    },
                },
                {
                    "name": "deploy",
                    "type": "deploy",
                    "deploy": {"endpoint": "credit", "model": {"step": "register"},
                               "canaryWeight": 10},
                },
            ],
            "schedules": [
                {"name": "nightly", "cron": "0 3 * * *", "timeZone": "Europe/Paris",
                 "suspend": True},
            ],
            "triggers": [
                {"name": "drift", "onDrift": {"endpoint": "credit", "cooldown": "1h",
                                              "maxRunsPerDay": 3}},
            ],
        },
    }  # fmt: skip


def _event_sink() -> dict[str, Any]:
    """Model and rollout events of the namespace to an in-cluster receiver, signed."""
    return {
        "apiVersion": contract.API_VERSION,
        "kind": "EventSink",
        "metadata": {"name": "ops"},
        "spec": {
            "ref": {"kind": "Service", "name": "event-receiver", "port": 8080, "path": "/events"},
            "types": ["dev.mlkube.model.*", "dev.mlkube.rollout.*", "dev.mlkube.drift.*"],
            "mode": "binary",
            "format": "cloudevents",
            "signing": {"secretRef": {"name": "event-receiver-key", "key": "key"}},
            "delivery": {
                "retry": 10,
                "backoffPolicy": "exponential",
                "backoffDelay": "PT0.5S",
                "timeout": "PT10S",
            },
        },
    }


def _environment() -> dict[str, Any]:
    """LightGBM on the scikit-learn curated environment (docs/environments.md §1)."""
    return {
        "apiVersion": contract.API_VERSION,
        "kind": "Environment",
        "metadata": {"name": "lgbm-1", "labels": {"team": "risk"}},
        "spec": {
            "environmentName": "lgbm",
            "version": "1",
            "description": "LightGBM on the scikit-learn curated environment.",
            "build": {
                "base": "mlkube-sklearn:0.1.0",
                "pip": ["lightgbm==4.5.0"],
                "env": [{"name": "OMP_NUM_THREADS", "value": "1"}],
            },
        },
    }


def build_samples() -> dict[str, list[dict[str, Any]]]:
    """Sample file name (under crds/samples/) to the objects it holds, in apply order."""
    blue = _model(
        "credit-risk-v3",
        "3",
        "file:///var/lib/mlkube/models/credit-risk/3",
        "Logistic regression credit risk classifier trained on Q2 2024 applications.",
    )
    green = _model(
        "credit-risk-v4",
        "4",
        "file:///var/lib/mlkube/models/credit-risk/4",
        "Candidate with stronger regularization; rolled out next to credit-risk-v3.",
    )
    # Drift on green (the deployment with drift enabled) is judged against the training data's
    # profile: shifted traffic on `credit` is what starts the credit-retrain Pipeline.
    green["spec"]["baseline"] = {"uri": SAMPLE_BASELINE_URI}
    endpoint = {
        "apiVersion": contract.API_VERSION,
        "kind": "OnlineEndpoint",
        "metadata": {"name": "credit"},
        "spec": {
            "deployments": [
                {"name": "blue", "model": "credit-risk-v3", "replicas": 2},
                {
                    "name": "green",
                    "model": "credit-risk-v4",
                    "autoscale": {"minReplicas": 1, "maxReplicas": 4, "targetConcurrency": 8},
                    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
                    "requestSettings": {"timeoutSeconds": 10, "maxConcurrency": 16},
                    "drift": {"enabled": True, "sampleRate": 0.5, "windowSize": 500},
                },
            ],
            "traffic": {"blue": 70, "green": 30},
        },
    }
    batch_endpoint = {
        "apiVersion": contract.API_VERSION,
        "kind": "BatchEndpoint",
        "metadata": {"name": "credit-batch"},
        "spec": {
            "deployments": [
                {"name": "files", "model": "credit-risk-v3"},
                {
                    "name": "rows",
                    "model": "credit-risk-v3",
                    "miniBatchSize": "10000rows",
                    "instanceCount": 2,
                    "maxConcurrencyPerInstance": 2,
                    "errorThreshold": 100,
                    "retrySettings": {"maxRetries": 2, "timeoutSeconds": 60},
                    "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
                },
            ],
            "defaultDeployment": "rows",
            "schedules": [
                {
                    "name": "nightly",
                    "cron": "0 2 * * *",
                    "timeZone": "Europe/Paris",
                    "input": {
                        "uri": "file:///var/lib/mlkube/data/applications/{scheduledTime:%Y-%m-%d}",
                        "format": "csv",
                    },
                }
            ],
        },
    }
    batch_job = {
        "apiVersion": contract.API_VERSION,
        "kind": "BatchJob",
        "metadata": {"name": "credit-batch-2024-06-01"},
        "spec": {
            "endpoint": "credit-batch",
            "input": {"uri": "file:///var/lib/mlkube/data/applications/2024-06-01"},
            "output": {"uri": "file:///var/lib/mlkube/batch/credit-batch-2024-06-01"},
            "overrides": {"miniBatchSize": "5000rows", "errorThreshold": 10},
        },
    }
    run = {
        "apiVersion": contract.API_VERSION,
        "kind": "PipelineRun",
        "metadata": {"name": "credit-retrain-manual-1"},
        "spec": {"pipeline": "credit-retrain", "parameters": {"C": "0.5"}},
    }
    return {
        "model.yaml": [blue],
        "model-v4.yaml": [green],
        "onlineendpoint.yaml": [endpoint],
        "batchendpoint.yaml": [batch_endpoint],
        "batchjob.yaml": [batch_job],
        "pipeline.yaml": [_pipeline()],
        "pipelinerun.yaml": [run],
        "eventsink.yaml": [_event_sink()],
        "environment.yaml": [_environment()],
    }
