"""Operator settings for what it fetches itself (B8): caps, per-namespace stores, networks."""

import pytest

from mlkube.builders.operator_config import (
    OperatorConfigError,
    fetch_policy,
    model_store_problem,
    parse_operator_config,
    store_problem,
)
from mlkube.storage import FetchLimits
from mlkube.storage.policy import DEFAULT_INTERNAL_NETWORKS

STORES = "team-a=s3://models/team-a,https://models.example.com/a/;*=s3://shared"


def test_defaults_cap_every_operator_read():
    config = parse_operator_config({})
    policy = fetch_policy(config)
    assert policy.limits == FetchLimits(max_bytes=20 * 1024**3, max_files=10_000, timeout=900.0)
    assert policy.guard_network and not policy.allow_local and not policy.require_digest
    assert policy.internal_networks == DEFAULT_INTERNAL_NETWORKS
    assert "cluster.local" in policy.internal_domains
    assert fetch_policy(config, require_digest=True).require_digest


def test_settings_from_the_environment():
    config = parse_operator_config({
        "MLKUBE_ARTIFACT_MAX_BYTES": "512Mi", "MLKUBE_ARTIFACT_MAX_FILES": "50",
        "MLKUBE_ARTIFACT_TIMEOUT_SECONDS": "30", "MLKUBE_ARTIFACT_STORES": STORES,
        "MLKUBE_ARTIFACT_INTERNAL_NETWORKS": "10.96.0.0/12, 10.244.0.0/16",
        "MLKUBE_ALLOW_FILE_ARTIFACTS": "true", "MLKUBE_CLUSTER_DOMAIN": "corp.local",
    })  # fmt: skip
    policy = fetch_policy(config)
    assert policy.limits == FetchLimits(max_bytes=512 * 1024**2, max_files=50, timeout=30.0)
    assert policy.allow_local  # dev mode: loopback and file:// too
    assert policy.internal_networks == ("10.96.0.0/12", "10.244.0.0/16")
    assert "corp.local" in policy.internal_domains
    assert config.artifact_stores == (
        ("*", ("s3://shared",)),
        ("team-a", ("s3://models/team-a", "https://models.example.com/a/")),
    )
    assert parse_operator_config({"MLKUBE_ARTIFACT_MAX_BYTES": "2G"}).artifact_max_bytes == 2e9
    none = parse_operator_config({"MLKUBE_ARTIFACT_INTERNAL_NETWORKS": "none"})
    assert none.artifact_internal_networks == ()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MLKUBE_ARTIFACT_MAX_BYTES": "lots"}, "not a positive size"),
        ({"MLKUBE_ARTIFACT_MAX_FILES": "0"}, "must be >= 1"),
        ({"MLKUBE_ARTIFACT_TIMEOUT_SECONDS": "nan"}, "must be >= 1"),
        ({"MLKUBE_ARTIFACT_STORES": "team-a"}, "is not 'namespace=prefix"),
        ({"MLKUBE_ARTIFACT_STORES": "team-a=/data"}, "must be an s3://"),
        ({"MLKUBE_ARTIFACT_STORES": "Team_A=s3://b"}, "is not 'namespace=prefix"),
        ({"MLKUBE_ARTIFACT_INTERNAL_NETWORKS": "10.0.0.0/33"}, "INTERNAL_NETWORKS"),
    ],
)
def test_bad_settings_are_refused(env, message):
    with pytest.raises(OperatorConfigError, match=message):
        parse_operator_config(env)


@pytest.mark.parametrize(
    ("uri", "namespace", "allowed"),
    [
        ("s3://models/team-a/fraud/1/abc/model.onnx", "team-a", True),
        ("s3://models/team-a", "team-a", True),
        ("https://models.example.com/a/fraud.onnx", "team-a", True),
        ("s3://shared/x/model.onnx", "team-b", True),  # "*" applies to every namespace
        ("s3://models/team-a/fraud.onnx", "team-b", False),  # another team's prefix
        ("s3://models/team-ab/fraud.onnx", "team-a", False),  # whole segments only
        ("s3://models-evil/team-a/fraud.onnx", "team-a", False),
        ("https://models.example.com/a/../b/fraud.onnx", "team-a", False),
        ("https://models.example.com/a/%2E%2E/b/fraud.onnx", "team-a", False),
        ("https://models.example.com@evil.example/a/m.onnx", "team-a", False),
        ("https://models.example.com/a/m.onnx?x=1", "team-a", False),
        ("gs://models/team-a/m.onnx", "team-a", False),  # other scheme, same bucket name
        ("pvc://claim/m.onnx", "team-b", True),  # the namespace's own claim
    ],
)
def test_store_allow_list(uri, namespace, allowed):
    config = parse_operator_config({"MLKUBE_ARTIFACT_STORES": STORES})
    problem = store_problem(uri, namespace, config)
    assert (problem is None) == allowed, problem
    assert store_problem(uri, namespace, parse_operator_config({})) is None  # no list: any store


def test_a_models_baseline_is_checked_as_well():
    config = parse_operator_config({"MLKUBE_ARTIFACT_STORES": STORES})
    spec = {"artifact": {"uri": "s3://shared/m.onnx"}, "baseline": {"uri": "s3://other/p.json"}}
    problem = model_store_problem(spec, "team-a", config)
    assert problem is not None and "s3://other/p.json is outside the stores" in problem
    assert "team-a" in problem and "s3://shared" in problem
    spec["baseline"] = {"uri": "s3://shared/p.json"}
    assert model_store_problem(spec, "team-a", config) is None
