"""The pure parts of `mlkube env create` and of the MLflow-derived environment: references,
names, requirement/conda/file inputs and the Environment manifests, compared as literal dicts."""

import os

import pytest

from mlkube.cli import env_curated, env_object, model_env
from mlkube.cli.errors import CliError


def test_references_and_names() -> None:
    assert env_object.parse_ref("lgbm:1.2.0") == ("lgbm", "1.2.0")
    for bad in ("lgbm", "lgbm:", ":1", "LGBM:1", "lgbm:-1"):
        with pytest.raises(CliError):
            env_object.parse_ref(bad)
    assert env_object.object_name("lgbm", "1") == "lgbm-1"
    assert env_object.object_name("lgbm", "1.2_RC1") == "lgbm-1.2-rc1"
    long = env_object.object_name("a" * 63, "b" * 63)
    assert len(long) == 127 and env_object.parse_ref("lgbm@latest") == ("lgbm", None)
    with pytest.raises(CliError, match="reserved for the curated"):
        env_object.check_name("mlkube-sklearn")
    with pytest.raises(CliError, match="not a DNS label"):
        env_object.check_name("Lgbm")
    with pytest.raises(CliError, match="must start and end with a letter or digit"):
        env_object.check_version("_1")
    assert env_object.is_curated("mlkube-onnx:0.1.0") and env_object.is_curated("mlkube-onnx")
    assert not env_object.is_curated("lgbm:1")


def test_requirement_lines_drop_comments_and_refuse_options_the_build_cannot_honour() -> None:
    text = "# pinned\nlightgbm==4.5.0  # the model\n\npandas>=2\nmypkg @ https://x/y.whl\n"
    assert env_object.requirement_lines(text, "req.txt") == [
        "lightgbm==4.5.0",
        "pandas>=2",
        "mypkg @ https://x/y.whl",
    ]
    with pytest.raises(CliError, match=r"req.txt:2: '--index-url' is not supported"):
        env_object.requirement_lines("a\n--index-url=https://pypi.example/simple\n", "req.txt")
    with pytest.raises(CliError, match=r"req\.txt:1: '-r'"):
        env_object.requirement_lines("-r base.txt\n", "req.txt")
    with pytest.raises(CliError, match="holds no requirements"):
        env_object.requirement_lines("# nothing\n", "req.txt")
    with pytest.raises(CliError, match="at most 256"):
        env_object.requirement_lines("\n".join(f"p{i}" for i in range(257)), "req.txt")


def test_conda_files_only_python_pip_and_the_pip_list() -> None:
    good = "dependencies:\n- python=3.11\n- pip<=24\n- pip: [lightgbm]\n"
    assert env_object.check_conda(good, "env.yml") == good
    with pytest.raises(CliError, match=r"conda packages numpy=1\.26, conda-forge::lightgbm"):
        env_object.check_conda(
            "dependencies: [python=3.11, numpy=1.26, 'conda-forge::lightgbm']", "env.yml"
        )
    with pytest.raises(CliError, match="no `dependencies:` list"):
        env_object.check_conda("name: x\n", "env.yml")


def test_files_take_text_mode_from_the_local_file_and_stay_small(tmp_path) -> None:
    script, tool = tmp_path / "features.py", tmp_path / "run.sh"
    script.write_text("X = 1\n")
    tool.write_text("#!/bin/sh\n")
    os.chmod(tool, 0o755)
    assert env_object.read_files([f"{script}:/opt/app/features.py", f"{tool}:/opt/app/run"]) == [
        {"path": "/opt/app/features.py", "content": "X = 1\n", "mode": 0o644},
        {"path": "/opt/app/run", "content": "#!/bin/sh\n", "mode": 0o755},
    ]
    with pytest.raises(CliError, match="LOCAL_PATH:/absolute/path"):
        env_object.read_files([f"{script}:opt/app"])
    with pytest.raises(CliError, match="given twice"):
        env_object.read_files([f"{script}:/a", f"{tool}:/a"])
    (tmp_path / "blob").write_bytes(b"\xff\xfe")
    with pytest.raises(CliError, match="not UTF-8"):
        env_object.read_files([f"{tmp_path / 'blob'}:/a"])
    (tmp_path / "big").write_text("x" * (64 * 1024 + 1))
    with pytest.raises(CliError, match="at most 65536"):
        env_object.read_files([f"{tmp_path / 'big'}:/a"])


def test_environment_manifests() -> None:
    build = env_object.BuildInputs(
        base="mlkube-sklearn:0.1.0",
        pip=["lightgbm==4.5.0"],
        apt=["libgomp1"],
        env={"OMP_NUM_THREADS": "1"},
    )
    made = env_object.build_environment(name="lgbm", version="1", namespace="team", build=build)
    assert made == {
        "apiVersion": "mlkube.dev/v1alpha1",
        "kind": "Environment",
        "metadata": {
            "name": "lgbm-1",
            "namespace": "team",
            "labels": {"mlkube.dev/environment": "lgbm", "mlkube.dev/version": "1"},
        },
        "spec": {
            "environmentName": "lgbm",
            "version": "1",
            "build": {
                "base": "mlkube-sklearn:0.1.0",
                "pip": ["lightgbm==4.5.0"],
                "apt": ["libgomp1"],
                "env": [{"name": "OMP_NUM_THREADS", "value": "1"}],
            },
        },
    }
    image = env_object.build_environment(
        name="scorer",
        version="2",
        namespace="team",
        image="registry.example/scorer:2.1",
        description="d",
    )
    assert image["spec"] == {
        "environmentName": "scorer",
        "version": "2",
        "description": "d",
        "image": "registry.example/scorer:2.1",
    }
    with pytest.raises(CliError, match="exactly one of --image or a build"):
        env_object.build_environment(name="x", version="1", namespace="t")


def test_yaml_specs_are_checked_with_the_flags_messages() -> None:
    ok = {"environmentName": "lgbm", "version": "1", "build": {"base": "mlkube-sklearn:0.1.0"}}
    env_object.check_spec("Environment", ok, "lgbm-1")
    with pytest.raises(CliError, match=r"Environment e: spec.version must be a string \(quote"):
        env_object.check_spec("Environment", {**ok, "version": 1}, "e")
    with pytest.raises(CliError, match=r"Environment e: set exactly one of spec\.image"):
        env_object.check_spec("Environment", {**ok, "image": "x:1"}, "e")
    with pytest.raises(CliError, match=r"Environment e: .*reserved"):
        env_object.check_spec("Environment", {**ok, "environmentName": "mlkube-x"}, "e")


def test_curated_catalogue_and_operator_overrides() -> None:
    default = env_curated.catalogue({})
    assert [(e["name"], e["image"], e["imageSource"]) for e in default] == [
        ("mlkube-mlflow", "ghcr.io/mlkube/mlkube-serving-mlflow:0.1.0", "derived"),
        ("mlkube-onnx", "ghcr.io/mlkube/mlkube-serving-onnx:0.1.0", "derived"),
        ("mlkube-sklearn", "ghcr.io/mlkube/mlkube-serving-sklearn:0.1.0", "derived"),
    ]
    overridden = env_curated.catalogue(
        {
            "MLKUBE_CURATED_ENVIRONMENTS": "mlkube-onnx=127.0.0.1:5000/s@sha256:ab",
            "MLKUBE_SERVING_IMAGE": "127.0.0.1:5000/serving@sha256:cd",
        }
    )
    assert [(e["image"], e["imageSource"]) for e in overridden] == [
        (None, "unavailable"),
        ("127.0.0.1:5000/s@sha256:ab", "configured"),
        (None, "unavailable"),
    ]
    with pytest.raises(CliError, match="is not name=image"):
        env_curated.catalogue({"MLKUBE_CURATED_ENVIRONMENTS": "mlkube-onnx"})


def _mlflow(tmp_path, **files: str):
    (tmp_path / "MLmodel").write_text("flavors: {sklearn: {}}\n")
    for name, text in files.items():
        (tmp_path / name.replace("_", ".")).write_text(text)
    return str(tmp_path)


def test_mlflow_requirements_derive_an_environment_without_mlflow_itself(tmp_path) -> None:
    path = _mlflow(tmp_path, requirements_txt="mlflow==2.16.0\nlightgbm==4.5.0\nMLflow_Skinny\n")
    derived = model_env.derive(path, "churn", "3", "team")
    assert derived is not None and derived.ref == "churn-env:3"
    assert derived.dropped == ("mlflow==2.16.0", "MLflow_Skinny")
    assert derived.body["metadata"]["name"] == "churn-env-3"
    assert derived.body["metadata"]["labels"]["mlkube.dev/environment"] == "churn-env"
    assert derived.body["spec"]["build"] == {
        "base": env_curated.MLFLOW_BASE,
        "pip": ["lightgbm==4.5.0"],
    }


def test_mlflow_conda_is_used_without_requirements_and_nothing_left_means_no_environment(
    tmp_path,
) -> None:
    conda = "dependencies:\n- python=3.11\n- pip:\n  - mlflow==2.16\n  - lightgbm\n"
    derived = model_env.derive(_mlflow(tmp_path, conda_yaml=conda), "churn", "3", "team")
    assert derived is not None and derived.dropped == ("mlflow==2.16",)
    assert "lightgbm" in derived.body["spec"]["build"]["conda"]
    assert "mlflow" not in derived.body["spec"]["build"]["conda"]
    (tmp_path / "conda.yaml").write_text("dependencies: [python=3.11, {pip: [mlflow]}]\n")
    assert model_env.derive(str(tmp_path), "churn", "3", "team") is None  # the base suffices
    (tmp_path / "conda.yaml").write_text("dependencies: [python=3.11, scipy]\n")
    with pytest.raises(CliError, match=r"cannot derive an environment: .*scipy.*--no-environment"):
        model_env.derive(str(tmp_path), "churn", "3", "team")


def test_no_derivation_for_non_mlflow_or_remote_paths_and_reserved_names(tmp_path) -> None:
    assert model_env.derive(str(tmp_path), "churn", "3", "team") is None
    assert model_env.derive("s3://bucket/churn/", "churn", "3", "team") is None
    path = _mlflow(tmp_path, requirements_txt="lightgbm\n")
    with pytest.raises(CliError, match=r"cannot derive .*reserved.*--environment"):
        model_env.derive(path, "mlkube-churn", "3", "team")
