"""The score step converts a model to ONNX in its parent only when the workers' runtime would
be sklearn: the same choice as online serving's create_runtime, so batch and online predictions
of one Model come from the same runtime."""

from __future__ import annotations

from pathlib import Path

from mlkube_serving.batch.prepared import is_sklearn


def test_custom_with_a_pickle_and_a_class_is_not_converted(tmp_path: Path) -> None:
    # `custom` means a scoring script or a Seldon class, even next to a pickled model.
    (tmp_path / "model.pkl").write_bytes(b"not read")
    (tmp_path / "MyModel.py").write_text("class MyModel: ...\n")
    assert not is_sklearn(str(tmp_path), "custom")
    assert is_sklearn(str(tmp_path), "sklearn")


def test_detected_and_unusable(tmp_path: Path) -> None:
    (tmp_path / "model.joblib").write_bytes(b"not read")
    assert is_sklearn(str(tmp_path), None)
    assert not is_sklearn(str(tmp_path / "missing"), None)  # workers report it themselves
