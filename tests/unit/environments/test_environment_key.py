"""The build key (docs/environments.md §3): equal for inputs that build the same image,
different for anything that changes it."""

from __future__ import annotations

import dataclasses

import pytest

from mlkube.reconcile.environment_key import (
    ENVBUILD_VERSION,
    BuildFile,
    BuildInputs,
    CondaSpec,
    EnvironmentKeyError,
    PipSettings,
    build_key,
    build_tag,
    canonical_name,
    inputs_from_spec,
    key_document,
    key_hex,
    normalise_requirement,
    normalise_requirements,
    parse_conda,
    probe_key,
)

BASE = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def key_of(build: dict[str, object], **kwargs: object) -> str:
    return build_key(inputs_from_spec(build, base_digest=BASE, **kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("LightGBM==4.5.0", "lightgbm==4.5.0"),
        ("  Foo_Bar.baz >= 1.0 , <2  # pinned for x", "foo-bar-baz<2,>=1.0"),
        ("requests [Socks, security] ==2.31", "requests[security,socks]==2.31"),
        ('numpy>=1.26 ; python_version  <  "3.12"', 'numpy>=1.26; python_version < "3.12"'),
        ("pkg @ https://x.example/p.whl#sha256=ab", "pkg @ https://x.example/p.whl#sha256=ab"),
        ("--find-links   http://mirror/  ", "--find-links http://mirror/"),
        ("# only a comment", None),
        ("   ", None),
    ],
)
def test_requirement_lines_normalise(line: str, expected: str | None) -> None:
    assert normalise_requirement(line) == expected


def test_requirement_without_a_name_is_refused_naming_the_line() -> None:
    with pytest.raises(EnvironmentKeyError, match=r"'>=1.0'"):
        normalise_requirement(">=1.0")


def test_requirements_sorted_deduplicated_and_continuations_joined() -> None:
    text = "b==1\nA==2 \\\n  ; os_name == 'posix'\n# c\nB==1\n"
    assert normalise_requirements([text]) == ("a==2; os_name == 'posix'", "b==1")


def test_pep503_names() -> None:
    assert canonical_name("Friendly.Bard__x") == "friendly-bard-x"


def test_spelling_order_and_comments_do_not_change_the_key() -> None:
    one = key_of({"pip": ["LightGBM==4.5.0", "numpy>=1.26"], "apt": ["libgomp1", "curl"]})
    two = key_of(
        {
            "pip": ["# deps", "numpy >= 1.26", "lightgbm == 4.5.0  # fast"],
            "apt": ["curl", "libgomp1"],
        }
    )
    assert one == two


@pytest.mark.parametrize(
    "change",
    [
        {"pip": ["lightgbm==4.5.1"]},
        {"apt": ["libgomp1"]},
        {"conda": "dependencies: [python=3.11, {pip: [lightgbm==4.5.0]}]"},
        {"files": [{"path": "/opt/app/a.py", "content": "x = 1\n"}]},
        {"env": [{"name": "OMP_NUM_THREADS", "value": "1"}]},
    ],
)
def test_every_input_changes_the_key(change: dict[str, object]) -> None:
    assert key_of({"pip": ["lightgbm==4.5.0"], **change}) != key_of({"pip": ["lightgbm==4.5.0"]})


def test_base_model_and_file_contents_change_the_key() -> None:
    base = inputs_from_spec({"pip": ["x"]}, base_digest=BASE)
    keys = {
        build_key(base),
        build_key(dataclasses.replace(base, base_digest=OTHER)),
        build_key(dataclasses.replace(base, model_digest=OTHER)),
        build_key(dataclasses.replace(base, files=(BuildFile("/a", "1"),))),
        build_key(dataclasses.replace(base, files=(BuildFile("/a", "2"),))),
        build_key(dataclasses.replace(base, files=(BuildFile("/a", "1", 0o755),))),
    }
    assert len(keys) == 6


def test_default_file_mode_equals_an_explicit_0644() -> None:
    files = [{"path": "/a", "content": "1"}]
    assert key_of({"files": files}) == key_of({"files": [{**files[0], "mode": 0o644}]})


def test_pip_settings_count_only_when_pip_installs_something() -> None:
    mirror = PipSettings(find_links=("http://mirror/wheels/",), no_index=True)
    assert key_of({"pip": ["x"]}, pip_settings=mirror) != key_of({"pip": ["x"]})
    assert key_of({"apt": ["curl"]}, pip_settings=mirror) == key_of({"apt": ["curl"]})
    # trusted hosts only relax TLS checks: the same distributions are chosen
    trusted = PipSettings(trusted_hosts=("mirror",))
    assert key_of({"pip": ["x"]}, pip_settings=trusted) == key_of({"pip": ["x"]})
    # a conda file's pip list uses pip too
    conda = {"conda": "dependencies: [{pip: [x]}]"}
    assert key_of(conda, pip_settings=mirror) != key_of(conda)


def test_apt_sources_count_only_with_apt_packages() -> None:
    sources = ("deb [trusted=yes] http://mirror/apt ./",)
    assert key_of({"apt": ["curl"]}, apt_sources=sources) != key_of({"apt": ["curl"]})
    assert key_of({"pip": ["x"]}, apt_sources=sources) == key_of({"pip": ["x"]})


def test_key_document_names_the_builder_version_and_is_stable() -> None:
    inputs = BuildInputs(base_digest=BASE, pip=("lightgbm==4.5.0",))
    document = key_document(inputs)
    assert document["builder"] == ENVBUILD_VERSION
    assert document["base"] == BASE
    # A fixed value: an accidental change of the canonical form would silently rebuild
    # every environment of every cluster after an upgrade.
    assert build_key(inputs) == build_key(BuildInputs(base_digest=BASE, pip=("lightgbm==4.5.0",)))
    assert build_key(inputs).startswith("sha256:") and len(build_key(inputs)) == 71


def test_conda_file_parsed_python_pin_pip_dropped_packages_kept() -> None:
    spec = parse_conda(
        "name: ignored\nchannels: [conda-forge]\n"
        "dependencies:\n  - python=3.11\n  - pip\n  - conda-forge::LibGomp >=13\n"
        "  - pip:\n    - MLflow==2.16.0\n    - cloudpickle\n"
    )
    assert spec == CondaSpec(
        python="3.11", packages=("libgomp>=13",), pip=("cloudpickle", "mlflow==2.16.0")
    )


def test_conda_name_and_channels_do_not_change_the_key() -> None:
    one = key_of({"conda": "name: a\ndependencies: [python=3.11, {pip: [x]}]"})
    two = key_of(
        {"conda": "name: b\nchannels: [defaults]\ndependencies: [{pip: [x]}, python=3.11]"}
    )
    assert one == two


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dependencies: [a", "not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
        ("dependencies: {pip: [x]}", "must be a list"),
        ("dependencies: [{npm: [x]}]", "is not a package"),
    ],
)
def test_bad_conda_files_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(EnvironmentKeyError, match=message):
        parse_conda(text)


def test_digests_are_checked() -> None:
    with pytest.raises(EnvironmentKeyError, match="base digest"):
        build_key(BuildInputs(base_digest="latest"))
    with pytest.raises(EnvironmentKeyError, match="model digest"):
        build_key(BuildInputs(base_digest=BASE, model_digest="md5:x"))


def test_names_tags_and_probe_keys() -> None:
    key = key_of({"pip": ["x"]})
    assert len(key_hex(key, 20)) == 20 and key.startswith("sha256:" + key_hex(key, 20))
    assert build_tag(key) == "build-" + key[7:39]
    assert probe_key(BASE) != probe_key(OTHER)
    assert probe_key(BASE) != build_key(BuildInputs(base_digest=BASE))


def test_conda_document_for_the_tools_parses_back_to_the_same_spec() -> None:
    import yaml

    spec = parse_conda("dependencies: [python>=3.10, r-base=4.3, setuptools, {pip: [B, a]}]")
    assert spec.document() == {"dependencies": ["python>=3.10", "r-base=4.3", {"pip": ["a", "b"]}]}
    assert parse_conda(yaml.safe_dump(spec.document())) == spec
