"""The artifact digest is deterministic, order-independent and unambiguous (framing)."""

import hashlib
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlkube.storage import ArtifactFacts, StorageError, compute_digest
from mlkube.storage.digest import ArtifactHasher, check_digest, digest_of_contents, hash_stream

# The worked example of docs/artifact-digest.md; if this changes, every stored digest breaks.
WORKED_EXAMPLE = {"MLmodel": b"flavors: {}\n", "data/model.pkl": b"abc"}
WORKED_EXAMPLE_DIGEST = "sha256:9aa5b12778197c1bb6ef5b8451df81d89b560830cd803281b125d0cfa71b4456"


def write_tree(root, files):
    for relpath, content in files.items():
        path = root.joinpath(*relpath.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def reference_digest(files):
    """The documented algorithm written out independently of the implementation."""
    outer = hashlib.sha256()
    for relpath in sorted(files, key=lambda p: p.encode()):
        outer.update(relpath.encode() + b"\x00" + hashlib.sha256(files[relpath]).digest())
    return "sha256:" + outer.hexdigest()


def test_worked_example_matches_docs():
    facts = digest_of_contents(WORKED_EXAMPLE.items())
    assert facts == ArtifactFacts(WORKED_EXAMPLE_DIGEST, size=15, file_count=2)
    assert reference_digest(WORKED_EXAMPLE) == WORKED_EXAMPLE_DIGEST


def test_folder_digest_equals_in_memory_digest(tmp_path):
    files = {"a.txt": b"1", "sub/b.bin": b"\x00\x01", "sub/deeper/c": b"", "z": b"last"}
    write_tree(tmp_path / "model", files)
    facts = compute_digest((tmp_path / "model").as_uri())
    assert facts == digest_of_contents(files.items())
    assert facts.digest == reference_digest(files)
    assert (facts.size, facts.file_count) == (7, 4)


def test_single_file_is_hashed_under_its_basename(tmp_path):
    (tmp_path / "model.pkl").write_bytes(b"weights")
    facts = compute_digest((tmp_path / "model.pkl").as_uri())
    assert facts.digest == reference_digest({"model.pkl": b"weights"})
    # Same layout after download (dest/model.pkl) -> same digest as a one-file folder.
    write_tree(tmp_path / "folder", {"model.pkl": b"weights"})
    assert compute_digest((tmp_path / "folder").as_uri()) == facts


def test_empty_file_and_empty_folder(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "dir").mkdir()
    file_facts = compute_digest((tmp_path / "empty").as_uri())
    folder_facts = compute_digest((tmp_path / "dir").as_uri())
    assert file_facts.digest == reference_digest({"empty": b""})
    assert (file_facts.size, file_facts.file_count) == (0, 1)
    assert folder_facts == ArtifactFacts("sha256:" + hashlib.sha256(b"").hexdigest(), 0, 0)
    assert file_facts.digest != folder_facts.digest


def test_empty_subfolders_do_not_count(tmp_path):
    write_tree(tmp_path / "m", {"a": b"x"})
    before = compute_digest((tmp_path / "m").as_uri())
    (tmp_path / "m" / "empty" / "nested").mkdir(parents=True)
    assert compute_digest((tmp_path / "m").as_uri()) == before


@pytest.mark.parametrize(
    ("left", "right"),
    [
        # Concatenated path+content would be identical without framing.
        ({"ab": b"c"}, {"a": b"bc"}),
        ({"a": b"bc", "d": b""}, {"a": b"b", "cd": b""}),
        # Moving bytes between consecutive files.
        ({"a": b"12", "b": b"3"}, {"a": b"1", "b": b"23"}),
        # Same contents, different names or nesting.
        ({"a/b": b"x"}, {"a_b": b"x"}),
        ({"x": b"1", "y": b"2"}, {"x": b"2", "y": b"1"}),
        # A content that looks like a record of another file.
        ({"a": b"b\x00" + hashlib.sha256(b"").digest()}, {"a": b"", "b": b""}),
    ],
)
def test_framing_separates_lookalike_artifacts(left, right):
    assert digest_of_contents(left.items()).digest != digest_of_contents(right.items()).digest


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1).filter(
            lambda s: s not in (".", "..")
        ),
        st.binary(max_size=64),
        max_size=6,
    ),
    st.randoms(),
)
def test_digest_ignores_listing_order(files, random):
    items = list(files.items())
    random.shuffle(items)
    assert digest_of_contents(items) == digest_of_contents(sorted(files.items()))
    assert digest_of_contents(items).digest == reference_digest(files)


def test_files_are_sorted_by_utf8_bytes(tmp_path):
    # "Z" < "a" < "é" in UTF-8 bytes; locale collation would order them differently.
    files = {"a": b"1", "Z": b"2", "é": b"3"}
    write_tree(tmp_path / "m", files)
    assert compute_digest((tmp_path / "m").as_uri()).digest == reference_digest(files)


def test_hash_stream_reads_in_chunks_and_copies():
    data = bytes(range(256)) * 9000  # > CHUNK_SIZE, so several reads
    sink = io.BytesIO()
    content_hash, size = hash_stream(io.BytesIO(data), sink)
    assert (content_hash, size, sink.getvalue()) == (hashlib.sha256(data).digest(), len(data), data)


def test_hasher_rejects_unsorted_or_unclean_paths():
    hasher = ArtifactHasher()
    hasher.add("b", hashlib.sha256().digest(), 0)
    with pytest.raises(StorageError, match="sorted"):
        hasher.add("a", hashlib.sha256().digest(), 0)
    for bad in ("", "/abs", "a//b", "../x", "a/./b", "nul\x00"):
        with pytest.raises(StorageError, match="clean relative"):
            ArtifactHasher().add(bad, hashlib.sha256().digest(), 0)


def test_check_digest():
    good = "sha256:" + "0" * 64
    assert check_digest(good) == good
    for bad in ("0" * 64, "sha256:" + "0" * 63, "md5:" + "0" * 64, "sha256:" + "A" * 64):
        with pytest.raises(StorageError, match="malformed digest"):
            check_digest(bad)


def test_single_file_worked_example_matches_docs(tmp_path):
    (tmp_path / "model.pkl").write_bytes(b"abc")
    assert compute_digest((tmp_path / "model.pkl").as_uri()).digest == (
        "sha256:27a664e9359eb410de18f82c56639e903e3674f533d1189e4d535a7b40babb80"
    )
