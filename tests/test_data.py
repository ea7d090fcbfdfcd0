"""Datasets by spec: loaders on small files the tests write, splits, and every bad input as one line."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from nas.data import DataError, Dataset, as_images, load_data
from nas.spaces.base import InputSpec


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


def test_digits_is_one_channel_8x8_with_ten_classes():
    data = load_data("digits")
    assert data.input_spec == InputSpec(1, 8, 8, 10)
    assert data.x.dtype == np.float32 and 0 <= data.x.min() and data.x.max() <= 1


def test_splits_are_stratified_disjoint_seeded_and_capped():
    data = load_data("digits")
    a = data.split(val_fraction=0.2, test_fraction=0.2, seed=0)
    b = data.split(val_fraction=0.2, test_fraction=0.2, seed=0)
    c = data.split(val_fraction=0.2, test_fraction=0.2, seed=1)
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("train", "val", "test"))
    assert not np.array_equal(a.val, c.val)
    assert not set(a.train) & set(a.val) and not set(a.train) & set(a.test) and not set(a.val) & set(a.test)
    assert len(a.train) + len(a.val) + len(a.test) == len(data.y)
    for split in (a.train, a.val, a.test):
        assert len(np.unique(data.y[split])) == 10
    capped = data.split(val_fraction=0.2, test_fraction=0.2, seed=0, max_train=100)
    assert len(capped.train) == 100 and set(capped.train) <= set(a.train)
    assert np.bincount(data.y[capped.train]).min() >= 9
    assert np.array_equal(capped.val, a.val)


@pytest.mark.parametrize(
    "shape, expected",
    [((6, 3, 5, 7), (6, 3, 5, 7)), ((6, 5, 7, 3), (6, 3, 5, 7)), ((6, 5, 7), (6, 1, 5, 7)), ((6, 11), (6, 11, 1, 1)), ((6, 1, 4, 3), (6, 1, 4, 3))],
)
def test_npz_images_nchw_nhwc_grey_and_feature_vectors(tmp_path, shape, expected):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, x=rng.random(shape).astype(np.float32), y=np.array([0, 1, 2, 0, 1, 2]))
    data = load_data(f"npz:{path}")
    assert data.x.shape == expected and data.classes == 3


def test_npz_uint8_images_scale_to_unit_range_and_keep_their_own_test_split(tmp_path):
    path = tmp_path / "d.npz"
    x = np.full((4, 2, 2, 3), 255, dtype=np.uint8)
    np.savez(path, x=x, y=[0, 1, 0, 1], x_test=x[:2], y_test=[1, 0])
    data = load_data(f"npz:{path}")
    assert data.x.max() == 1.0 and data.x_test is not None and data.x_test.shape == (2, 3, 2, 2)
    splits = data.split(val_fraction=0.5, test_fraction=0.3, seed=0)
    assert list(splits.test) == [0, 1] and len(splits.train) + len(splits.val) == 4


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": np.zeros((4, 3)), "y": np.array([0, 1, 0])}, "labels must be one per image (4)"),
        ({"x": np.zeros((4, 3)), "y": np.array([0, 1, 5, 1])}, "labels skip class(es) [2, 3, 4]"),
        ({"x": np.zeros((4, 3)), "y": np.array([0, -1, 1, 1])}, "label -1 is out of range"),
        ({"x": np.zeros((4, 3)), "y": np.array([0.0, 1.5, 1.0, 0.0])}, "labels must be whole numbers"),
        ({"x": np.array([[0.0], [np.nan], [1.0], [2.0]]), "y": np.array([0, 1, 0, 1])}, "NaN or infinite"),
        ({"x": np.zeros((4, 3)), "y": np.array([1, 1, 1, 1])}, "labels hold 1 class; expected at least 2"),
        ({"x": np.zeros((4, 3)), "y": np.array([1, 2, 1, 2])}, "labels skip class(es) [0]"),
        ({"x": np.zeros((4, 2, 2, 2, 2)), "y": np.array([0, 1, 0, 1])}, "x must be N x F, N x H x W or N x C x H x W"),
        ({"x": np.zeros((4, 3))}, "has no array(s) ['y']"),
    ],
)
def test_bad_npz_arrays_are_one_line_errors(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError) as info:
        load_data(f"npz:{path}")
    assert message in one_line(info.value)


def test_too_few_samples_for_the_validation_split_is_one_line(tmp_path):
    path = tmp_path / "tiny.npz"
    np.savez(path, x=np.zeros((4, 3)), y=[0, 1, 0, 1])
    with pytest.raises(DataError) as info:
        load_data(f"npz:{path}").split(val_fraction=0.2, test_fraction=0.2, seed=0)
    assert "class 0 has 2 sample(s), too few" in one_line(info.value)


def test_folder_of_class_subfolders_reads_grey_and_colour_images(tmp_path):
    from PIL import Image

    for label, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.new("RGB", (6, 5) if i else (4, 4), colour).save(tmp_path / label / f"{i}.png")
    data = load_data(f"folder:{tmp_path}")
    assert data.x.shape == (6, 3, 5, 6) and data.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.source["classes_by_folder"] == ["cat", "dog"]
    assert data.x[0, 0].max() == pytest.approx(1.0) and data.x[3, 2].max() == pytest.approx(1.0)
    grey = tmp_path / "grey"
    for label in ("a", "b"):
        (grey / label).mkdir(parents=True)
        Image.new("L", (3, 3), 7).save(grey / label / "x.png")
    assert load_data(f"folder:{grey}").input_spec == InputSpec(1, 3, 3, 2)


def test_folder_errors_name_the_folder(tmp_path):
    (tmp_path / "only").mkdir()
    with pytest.raises(DataError, match="has 1 class sub-folder"):
        load_data(f"folder:{tmp_path}")
    (tmp_path / "other").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        load_data(f"folder:{tmp_path}")
    (tmp_path / "only" / "a.png").write_bytes(b"not a png")
    (tmp_path / "other" / "b.png").write_bytes(b"not a png")
    with pytest.raises(DataError) as info:
        load_data(f"folder:{tmp_path}")
    assert "is not a readable image" in one_line(info.value)


def write_cifar10(root, n=4, protocol=2):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"batch_label": b"x", b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": [i % 2 for i in range(n)], b"filenames": [b"f"] * n}
        with open(root / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=protocol)


def test_cifar10_batches_load_through_the_restricted_unpickler(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-py")
    data = load_data(f"cifar10:{tmp_path}")
    assert data.x.shape == (20, 3, 32, 32) and data.x_test is not None and data.x_test.shape == (4, 3, 32, 32)
    assert data.classes == 2 and data.x.max() <= 1.0


def test_cifar100_train_and_test_files(tmp_path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    for name, n in (("train", 6), ("test", 3)):
        batch = {b"data": np.zeros((n, 3072), dtype=np.uint8), b"fine_labels": [i % 3 for i in range(n)], b"coarse_labels": [0] * n}
        with open(root / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=4)
    data = load_data(f"cifar100:{root}")
    assert data.classes == 3 and len(data.y) == 6 and len(data.y_test) == 3


def test_a_cifar_directory_without_batches_names_the_missing_files(tmp_path):
    with pytest.raises(DataError) as info:
        load_data(f"cifar10:{tmp_path}")
    assert "lacks the cifar10 batch file(s) ['data_batch_1'" in one_line(info.value)


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_cifar_batch_is_refused_without_running_anything(tmp_path):
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    exploit = _Exploit()
    exploit.marker = marker
    with open(tmp_path / "data_batch_3", "wb") as fh:
        pickle.dump({b"data": exploit, b"labels": [0]}, fh, protocol=2)
    with pytest.raises(DataError) as info:
        load_data(f"cifar10:{tmp_path}")
    assert "refusing to unpickle global" in one_line(info.value) and "data_batch_3" in str(info.value)
    assert not marker.exists()


def test_object_arrays_and_non_batches_are_refused(tmp_path):
    write_cifar10(tmp_path)
    with open(tmp_path / "data_batch_1", "wb") as fh:
        pickle.dump({b"data": np.array([object()], dtype=object), b"labels": [0]}, fh, protocol=2)
    with pytest.raises(DataError, match="is not a CIFAR python batch"):
        load_data(f"cifar10:{tmp_path}")
    (tmp_path / "data_batch_1").write_bytes(b"plain text, not a pickle")
    with pytest.raises(DataError, match="is not a CIFAR python batch"):
        load_data(f"cifar10:{tmp_path}")
    with open(tmp_path / "data_batch_1", "wb") as fh:
        pickle.dump([1, 2, 3], fh)
    with pytest.raises(DataError, match="expected a dict with b'data'"):
        load_data(f"cifar10:{tmp_path}")


@pytest.mark.parametrize("spec, message", [("mnist", "unknown dataset 'mnist'; known: digits, npz:PATH"), ("npz", "dataset needs a path: npz:PATH"), ("digits:x", "takes no argument")])
def test_unknown_or_malformed_specs_list_the_known_ones(spec, message):
    with pytest.raises(DataError) as info:
        load_data(spec)
    assert message in one_line(info.value)


def test_digest_changes_with_the_data():
    data = load_data("digits")
    other = Dataset("x", data.x.copy(), data.y.copy())
    assert other.digest() == data.digest()
    other.x[0, 0, 0, 0] += 1
    assert other.digest() != data.digest()
    assert as_images(np.zeros((2, 4)), "v").shape == (2, 4, 1, 1)
