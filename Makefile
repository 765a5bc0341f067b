# Thin wrappers: the logic lives in hack/ and the mlkube CLI.
.PHONY: dev dev-down dev-status test test-gitops unit lint generate verify controlplane venv \
	bench-serving bench-router bench-drift bench-drift-hook bench-drift-overhead bench-batch bench-batch-quick \
	bench-pipeline bench-rollout bench-events bench-operator bench-operator-quick

VENV := .venv/bin

venv:
	@hack/venv.sh

controlplane:
	@bash hack/controlplane/build.sh

# Main job: local control plane + CRDs + operator + samples; prints kubeconfig and what to try.
dev: venv
	@$(VENV)/mlkube dev up

dev-down: venv
	@$(VENV)/mlkube dev down

dev-status: venv
	@$(VENV)/mlkube dev status

# The test command (CI runs it through .ci/run).
test:
	@hack/test

# Optional: Flux's controllers as processes against the dev control plane (docs/deploy-flux.md).
test-gitops:
	@hack/test-gitops

unit: venv
	@$(VENV)/python -m pytest tests/unit -q

lint: venv
	@$(VENV)/ruff check . && $(VENV)/ruff format --check . && \
		$(VENV)/mypy operator/mlkube serving-image/mlkube_serving && $(VENV)/lint-imports

generate: venv
	@hack/generate

verify: venv
	@hack/verify

bench-serving: venv
	@$(VENV)/python bench/serving/run.py

bench-router: venv
	@$(VENV)/python bench/router/run.py

bench-drift: venv
	@$(VENV)/python bench/drift/run.py

bench-drift-hook: venv
	@$(VENV)/python bench/drift/hook_loop.py

bench-drift-overhead: venv
	@$(VENV)/python bench/drift/serving_overhead.py

bench-batch: venv
	@$(VENV)/python bench/batch/run.py

bench-batch-quick: venv
	@$(VENV)/python bench/batch/run.py --quick

# mlkube's PipelineRun controller against Argo's workflow-controller (built by hack/argo/build.sh).
bench-pipeline: venv
	@$(VENV)/python bench/pipeline/run.py

# Metric breach -> live traffic off the rollout candidate (real routers, signed config push).
bench-rollout: venv
	@$(VENV)/python bench/rollout/breach.py

# Notifications: delivery throughput/latency to a local CloudEvents sink, memory with 10k queued.
bench-events: venv
	@$(VENV)/python bench/events/run.py

# The operator at scale against the API server's floor (issue 15): N = BENCH_OPERATOR_N
# (default 100,300,1000), a fresh kwok cluster per N; docs/benchmarks/operator-scale.md.
bench-operator: venv
	@$(VENV)/python bench/operator/run.py

bench-operator-quick: venv
	@$(VENV)/python bench/operator/run.py --n 20 --resync 30
