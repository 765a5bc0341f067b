"""What the operator and the data plane agree on: names, ports, paths, env vars, headers.

Dependency-free on purpose: both the operator (which must stay light) and the serving image
import it, so a port or an env name is defined once and cannot drift between the two.
"""

from typing import Final

GROUP: Final = "mlkube.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
FIELD_MANAGER: Final = "mlkube-operator"

# Kinds and their plurals (api/ describes them; everything else names them from here).
KIND_MODEL: Final = "Model"
PLURAL_MODELS: Final = "models"
KIND_ONLINE_ENDPOINT: Final = "OnlineEndpoint"
PLURAL_ONLINE_ENDPOINTS: Final = "onlineendpoints"
KIND_BATCH_ENDPOINT: Final = "BatchEndpoint"
PLURAL_BATCH_ENDPOINTS: Final = "batchendpoints"
KIND_BATCH_JOB: Final = "BatchJob"
PLURAL_BATCH_JOBS: Final = "batchjobs"
KIND_PIPELINE: Final = "Pipeline"
PLURAL_PIPELINES: Final = "pipelines"
KIND_PIPELINE_RUN: Final = "PipelineRun"
PLURAL_PIPELINE_RUNS: Final = "pipelineruns"
KIND_EVENT_SINK: Final = "EventSink"
PLURAL_EVENT_SINKS: Final = "eventsinks"
KIND_ENVIRONMENT: Final = "Environment"
PLURAL_ENVIRONMENTS: Final = "environments"
# Environment names with this prefix are the curated environments mlkube ships (CEL rejects
# them on user objects); docs/environments.md §6.
CURATED_ENVIRONMENT_PREFIX: Final = "mlkube-"
# BatchJobs created by a BatchEndpoint schedule: which endpoint and schedule, and the time.
LABEL_BATCH_ENDPOINT: Final = "mlkube.dev/batch-endpoint"
LABEL_SCHEDULE: Final = "mlkube.dev/schedule"
ANNOTATION_SCHEDULED_TIME: Final = "mlkube.dev/scheduled-time"

# Labels (tags are labels too: users add their own with `--tag k=v`).
LABEL_MODEL: Final = "mlkube.dev/model"
LABEL_VERSION: Final = "mlkube.dev/version"
LABEL_ENDPOINT: Final = "mlkube.dev/endpoint"
LABEL_DEPLOYMENT: Final = "mlkube.dev/deployment"
LABEL_COMPONENT: Final = "mlkube.dev/component"
LABEL_ARCHIVED: Final = "mlkube.dev/archived"
# Environments (docs/environments.md): on Environments (name, version) and on build Jobs.
LABEL_ENVIRONMENT: Final = "mlkube.dev/environment"
LABEL_BUILD_KEY: Final = "mlkube.dev/build-key"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_BATCH_JOB: Final = "mlkube.dev/batch-job"  # on a BatchJob's Jobs and their pods
LABEL_BATCH_STEP: Final = "mlkube.dev/batch-step"  # plan | score | merge (pod templates)
# Pipelines (docs/pipelines.md): on runs the operator creates, on step Jobs and their pods,
# on the run's spec snapshot ConfigMap.
LABEL_PIPELINE: Final = "mlkube.dev/pipeline"
LABEL_PIPELINE_RUN: Final = "mlkube.dev/pipeline-run"
LABEL_PIPELINE_STEP: Final = "mlkube.dev/pipeline-step"
LABEL_CACHE_KEY: Final = "mlkube.dev/cache-key"
ANNOTATION_ATTEMPT: Final = "mlkube.dev/attempt"
# On runs a Pipeline trigger started (with LABEL_PIPELINE): which trigger (docs/pipelines.md §5).
LABEL_TRIGGER: Final = "mlkube.dev/trigger"
MANAGED_BY: Final = "mlkube"

# Audit annotations stamped by the mutating webhook.
ANNOTATION_CREATED_BY: Final = "mlkube.dev/created-by"
ANNOTATION_LAST_MODIFIED_BY: Final = "mlkube.dev/last-modified-by"
# ...and the webhook's proofs that it wrote them (reconcile/audit_proof.py).
ANNOTATION_CREATED_BY_PROOF: Final = "mlkube.dev/created-by-proof"
ANNOTATION_LAST_MODIFIED_BY_PROOF: Final = "mlkube.dev/last-modified-by-proof"

# Rollout requests from the CLI on an OnlineEndpoint (docs/rollouts.md §5): JSON
# {"action", "id", "revision"}, acted on once per id (api/rollout_status.RolloutRequest).
ANNOTATION_ROLLOUT_REQUEST: Final = "mlkube.dev/rollout-request"
ROLLOUT_ACTION_PROMOTE: Final = "promote"
ROLLOUT_ACTION_PROMOTE_FULL: Final = "promote-full"
ROLLOUT_ACTION_ABORT: Final = "abort"
ROLLOUT_ACTION_RETRY: Final = "retry"
ROLLOUT_ACTIONS: Final = (
    ROLLOUT_ACTION_PROMOTE,
    ROLLOUT_ACTION_PROMOTE_FULL,
    ROLLOUT_ACTION_ABORT,
    ROLLOUT_ACTION_RETRY,
)

# Ports inside serving pods.
SERVER_HTTP_PORT: Final = 8080
SERVER_METRICS_PORT: Final = 8082
SERVER_GRPC_PORT: Final = 8081  # the Open Inference Protocol over gRPC (KServe's and MLServer's)
ROUTER_HTTP_PORT: Final = 8080
ROUTER_METRICS_PORT: Final = 8082
ROUTER_GRPC_PORT: Final = 8081  # gRPC proxied with the HTTP side's split, mirror and targeting
DRIFT_PORT: Final = 8090
DRIFT_METRICS_PORT: Final = 8091

# Paths inside serving pods.
MODEL_DIR: Final = "/mnt/models"

# Environment variables read by the data-plane entrypoints.
ENV_MODEL_DIR: Final = "MLKUBE_MODEL_DIR"
ENV_MODEL_NAME: Final = "MLKUBE_MODEL_NAME"
ENV_MODEL_VERSION: Final = "MLKUBE_MODEL_VERSION"
ENV_FRAMEWORK: Final = "MLKUBE_FRAMEWORK"
ENV_HTTP_PORT: Final = "MLKUBE_HTTP_PORT"
ENV_METRICS_PORT: Final = "MLKUBE_METRICS_PORT"
ENV_GRPC_PORT: Final = "MLKUBE_GRPC_PORT"  # OIP over gRPC; off while unset or 0
ENV_WORKERS: Final = "MLKUBE_WORKERS"
ENV_REQUEST_TIMEOUT: Final = "MLKUBE_REQUEST_TIMEOUT_SECONDS"
ENV_MAX_CONCURRENCY: Final = "MLKUBE_MAX_CONCURRENCY"
ENV_ONNX_ACCELERATION: Final = "MLKUBE_ONNX_ACCELERATION"
# Adaptive batching (an OnlineEndpoint deployment's `batcher`): off while unset or < 2.
ENV_MAX_BATCH_SIZE: Final = "MLKUBE_MAX_BATCH_SIZE"
ENV_MAX_BATCH_LATENCY_MS: Final = "MLKUBE_MAX_BATCH_LATENCY_MS"
MAX_BATCH_ROWS: Final = 4096  # the largest maxBatchSize (the API's bound and the server's)
ENV_DRIFT_URL: Final = "MLKUBE_DRIFT_URL"
ENV_DRIFT_SAMPLE_RATE: Final = "MLKUBE_DRIFT_SAMPLE_RATE"
# Server and sidecar: the shared-memory samples spool (a memory emptyDir both mount); unset,
# samples go over HTTP to MLKUBE_DRIFT_URL.
ENV_DRIFT_SPOOL_DIR: Final = "MLKUBE_DRIFT_SPOOL_DIR"
# Payload logging (an OnlineEndpoint deployment's `logger`): sampled request/response pairs as
# CloudEvents in KServe's logger format, POSTed to a plain-HTTP sink.
ENV_PAYLOAD_LOG_URL: Final = "MLKUBE_PAYLOAD_LOG_URL"
ENV_PAYLOAD_LOG_MODE: Final = "MLKUBE_PAYLOAD_LOG_MODE"  # all | request | response
ENV_PAYLOAD_LOG_RATE: Final = "MLKUBE_PAYLOAD_LOG_SAMPLE_RATE"
ENV_PAYLOAD_LOG_REDACT: Final = "MLKUBE_PAYLOAD_LOG_REDACT"  # comma-separated field names
ENV_PAYLOAD_LOG_ENCODING: Final = "MLKUBE_PAYLOAD_LOG_ENCODING"  # binary | structured
ENV_PAYLOAD_LOG_ENDPOINT: Final = "MLKUBE_PAYLOAD_LOG_ENDPOINT"  # ce-inferenceservicename
ENV_PAYLOAD_LOG_DEPLOYMENT: Final = "MLKUBE_PAYLOAD_LOG_DEPLOYMENT"  # ce-endpoint
ENV_PAYLOAD_LOG_NAMESPACE: Final = "MLKUBE_PAYLOAD_LOG_NAMESPACE"  # ce-namespace
# From the EventSink's signing Secret (secretKeyRef), never in the pod spec itself.
ENV_PAYLOAD_LOG_SIGNING_KEY: Final = "MLKUBE_PAYLOAD_LOG_SIGNING_KEY"
PAYLOAD_LOG_REQUEST_TYPE: Final = "org.kubeflow.serving.inference.request"
PAYLOAD_LOG_RESPONSE_TYPE: Final = "org.kubeflow.serving.inference.response"
ENV_ROUTER_CONFIG: Final = "MLKUBE_ROUTER_CONFIG"
ENV_ROUTER_PUSH_KEY: Final = "MLKUBE_ROUTER_PUSH_KEY_FILE"  # enables PUT /-/config (signed)
ENV_ARTIFACT_URI: Final = "MLKUBE_ARTIFACT_URI"
ENV_ARTIFACT_DIGEST: Final = "MLKUBE_ARTIFACT_DIGEST"

# Router headers.
HEADER_DEPLOYMENT: Final = "x-mlkube-deployment"
HEADER_AZUREML_DEPLOYMENT: Final = "azureml-model-deployment"
HEADER_MIRRORED: Final = "x-mlkube-mirrored"
# Config push (docs/rollouts.md §6): "sha256=<hex HMAC-SHA256 of the body under the push key>".
HEADER_CONFIG_SIGNATURE: Final = "x-mlkube-signature"
CONFIG_SIGNATURE_PREFIX: Final = "sha256="

# Artifact digests are "sha256:<hex>" over sorted relative paths and contents.
DIGEST_ALGORITHM: Final = "sha256"

# Artifact storage (mlkube.storage): pvc://claim/path maps to <PVC_ROOT>/<claim>/<path>.
PVC_ROOT: Final = "/mnt/pvc"
ENV_PVC_ROOT: Final = "MLKUBE_PVC_ROOT"
ENV_S3_ENDPOINT_URL: Final = "MLKUBE_S3_ENDPOINT_URL"  # wins over AWS_ENDPOINT_URL
ENV_STORE: Final = "MLKUBE_STORE"  # default store prefix for `mlkube model register`

# Model server (mlkube_serving.server): settings beyond the ones above.
ENV_HTTP_HOST: Final = "MLKUBE_HTTP_HOST"
ENV_MAX_BODY_BYTES: Final = "MLKUBE_MAX_BODY_BYTES"
ENV_ENTRYPOINT: Final = (
    "MLKUBE_ENTRYPOINT"  # scoring script (score.py) or Seldon class (Module.Class)
)
ENV_GRACEFUL_SHUTDOWN: Final = "MLKUBE_GRACEFUL_SHUTDOWN_SECONDS"
# Bytes of request bodies the server holds at once (queued or running), then 503.
ENV_MAX_QUEUED_BYTES: Final = "MLKUBE_MAX_QUEUED_BYTES"
# Container memory limit in bytes (downward API): byte budgets default to a share of it.
ENV_MEMORY_LIMIT: Final = "MLKUBE_MEMORY_LIMIT_BYTES"
# Router: GET path answering the sha256 of the config file it loaded (status.traffic check).
ROUTER_CONFIG_STATE_PATH: Final = "/-/config"  # PUT: the operator's signed config push

# Drift sidecar (mlkube_serving.drift): baseline profile, window and evaluation settings.
DRIFT_SAMPLES_PATH: Final = "/v1/samples"  # POST, answered 202; wire format in docs/drift.md
# The model server's compact batch format (docs/drift.md); JSON stays accepted for other senders.
DRIFT_SAMPLES_BATCH_TYPE: Final = "application/x-mlkube-drift-samples"
DRIFT_SAMPLES_BATCH_MAGIC: Final = b"MKDS\x01"  # format name and version 1
# Format 2: the plain V2 requests and replies themselves, parsed by the sidecar (docs/drift.md).
DRIFT_SAMPLES_BODIES_MAGIC: Final = b"MKDS\x02"
DRIFT_SUMMARY_PATH: Final = "/v1/summary"  # GET, polled by the operator and merged
DRIFT_PROFILE_FORMAT_VERSION: Final = 1
ENV_DRIFT_PROFILE: Final = "MLKUBE_DRIFT_PROFILE"
ENV_DRIFT_WINDOW_SIZE: Final = "MLKUBE_DRIFT_WINDOW_SIZE"
ENV_DRIFT_EVAL_INTERVAL: Final = "MLKUBE_DRIFT_EVAL_INTERVAL_SECONDS"
ENV_DRIFT_EVAL_SAMPLES: Final = "MLKUBE_DRIFT_EVAL_SAMPLES"
ENV_DRIFT_MAX_FEATURE_SERIES: Final = "MLKUBE_DRIFT_MAX_FEATURE_SERIES"

# OnlineEndpoint serving pods (operator builders <-> model server / router).
METRIC_INFLIGHT_REQUESTS: Final = "mlkube_inflight_requests"  # per-pod gauge; HPA Pods metric
ROUTER_CONFIG_DIR: Final = "/etc/mlkube/router"  # ConfigMap mount (a directory: hot reload)
ROUTER_CONFIG_FILE: Final = "config.json"
ROUTER_KEYS_DIR: Final = "/etc/mlkube/keys"  # Secret mount of the endpoint's API keys
ROUTER_KEYS_FILE: Final = "keys"  # one key per line
ROUTER_PUSH_DIR: Final = "/etc/mlkube/push"  # Secret mount of the endpoint's config push key
ROUTER_PUSH_KEY_FILE: Final = "key"

# Drift monitoring of OnlineEndpoints (operator builders <-> drift sidecar).
DRIFT_BASELINE_DIR: Final = "/mnt/drift-baseline"  # the baseline profile, downloaded at pod start
DRIFT_SPOOL_DIR: Final = "/mnt/drift-spool"  # the samples rings, one per server worker
DRIFT_SPOOL_RING_MIB: Final = 4  # each worker's ring (server default; the volume is sized by it)
ENV_DRIFT_FEATURES: Final = "MLKUBE_DRIFT_FEATURES"  # comma-separated subset of profiled features
