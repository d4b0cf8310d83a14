"""Data loading: every source, and a clear refusal of bad data before training starts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer.data import FIELDS, SOURCES, Batch, DataError, DataSpec, find_source, load_data


def _write_images(folder: Path, sizes, mode: str = "RGB", fmt: str = "PNG") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate(sizes):
        channels = 3 if mode == "RGB" else 1
        arr = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
        img = Image.fromarray(arr[..., 0] if channels == 1 else arr, mode=mode)
        img.save(folder / f"img{i}.{fmt.lower()}", format=fmt)


def test_mnist5k_is_5000_real_digits():
    data = load_data("mnist5k")
    assert data.images.shape == (5000, 1, 28, 28)
    assert data.images.dtype == np.float32
    assert 0.0 <= data.images.min() and data.images.max() <= 1.0
    assert sorted(set(data.labels.tolist())) == list(range(10))


def test_folder_any_size_is_resized_and_center_cropped(tmp_path):
    _write_images(tmp_path / "imgs", [(40, 30), (100, 64), (33, 33)], fmt="PNG")
    _write_images(tmp_path / "imgs" / "sub", [(50, 80)], fmt="JPEG")
    data = load_data(str(tmp_path / "imgs"), image_size=32)
    assert data.images.shape == (4, 3, 32, 32)
    assert data.skipped == []


def test_folder_grayscale_flag_converts(tmp_path):
    _write_images(tmp_path / "imgs", [(20, 20), (30, 40)])
    data = load_data(str(tmp_path / "imgs"), image_size=16, channels=1)
    assert data.images.shape == (2, 1, 16, 16)


def test_empty_folder_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="no images found"):
        load_data(str(tmp_path / "empty"))


def test_unreadable_files_are_skipped_and_counted(tmp_path):
    _write_images(tmp_path / "imgs", [(20, 20), (20, 20)])
    (tmp_path / "imgs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (tmp_path / "imgs" / "empty.jpg").write_bytes(b"")
    data = load_data(str(tmp_path / "imgs"), image_size=16)
    assert len(data) == 2
    assert len(data.skipped) == 2
    assert any("broken.png" in s for s in data.skipped)


def test_folder_of_only_unreadable_files_is_refused(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="none of the 1 image files could be read"):
        load_data(str(tmp_path / "imgs"))


def test_too_small_images_are_refused(tmp_path):
    _write_images(tmp_path / "imgs", [(64, 64), (5, 40)])
    with pytest.raises(DataError, match="smaller than 8 px"):
        load_data(str(tmp_path / "imgs"), image_size=32)


def test_mixed_channel_counts_need_a_flag(tmp_path):
    _write_images(tmp_path / "imgs", [(20, 20)], mode="RGB")
    _write_images(tmp_path / "imgs" / "gray", [(20, 20)], mode="L")
    with pytest.raises(DataError, match="--channels"):
        load_data(str(tmp_path / "imgs"), image_size=16)
    assert load_data(str(tmp_path / "imgs"), image_size=16, channels=3).images.shape == (2, 3, 16, 16)


def test_npz_with_labels_and_nhwc_layout(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "d.npz"
    np.savez(path, images=rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8), labels=np.arange(10))
    data = load_data(str(path))
    assert data.images.shape == (10, 3, 32, 32)
    assert data.labels.tolist() == list(range(10))


def test_npy_out_of_range_floats_are_refused(tmp_path):
    path = tmp_path / "d.npy"
    np.save(path, np.full((4, 16, 16), 3.0, np.float32))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        load_data(str(path))


def test_npy_nan_is_refused(tmp_path):
    arr = np.zeros((4, 16, 16), np.float32)
    arr[0, 0, 0] = np.nan
    np.save(tmp_path / "d.npy", arr)
    with pytest.raises(DataError, match="NaN"):
        load_data(str(tmp_path / "d.npy"))


def test_missing_source_is_refused(tmp_path):
    with pytest.raises(DataError, match="neither 'mnist5k', 'kanjivg', .* nor an existing"):
        load_data(str(tmp_path / "nope"))


def test_mnist5k_says_what_it_gives():
    spec = load_data("mnist5k").spec
    assert spec.fields == ("images", "labels") and spec.shape == (1, 28, 28) and spec.count == 5000
    assert spec.class_names == tuple(str(d) for d in range(10)) and spec.num_classes == 10
    assert DataSpec.from_dict(spec.to_dict()) == spec


def test_folder_with_one_subfolder_per_class_gives_labels(tmp_path):
    _write_images(tmp_path / "imgs" / "cats", [(20, 20), (24, 20)])
    _write_images(tmp_path / "imgs" / "dogs", [(20, 20)])
    data = load_data(str(tmp_path / "imgs"), image_size=16)
    assert data.class_names == ["cats", "dogs"] and data.labels.tolist() == [0, 0, 1]
    assert data.spec.fields == ("images", "labels")
    _write_images(tmp_path / "imgs", [(20, 20)])  # an image at the top level: no classes
    data = load_data(str(tmp_path / "imgs"), image_size=16)
    assert data.labels is None and data.class_names == [] and data.spec.fields == ("images",)


def test_npz_class_names_and_bad_labels(tmp_path):
    images = np.zeros((4, 8, 8), np.uint8)
    np.savez(tmp_path / "named.npz", images=images, labels=[0, 1, 1, 0], class_names=np.array(["no", "yes"]))
    assert load_data(str(tmp_path / "named.npz")).class_names == ["no", "yes"]
    np.savez(tmp_path / "unnamed.npz", images=images, labels=[0, 2, 2, 0])
    assert load_data(str(tmp_path / "unnamed.npz")).class_names == ["0", "1", "2"]
    np.savez(tmp_path / "neg.npz", images=images, labels=[0, -1, 1, 0])
    with pytest.raises(DataError, match="labels must be >= 0"):
        load_data(str(tmp_path / "neg.npz"))
    np.savez(tmp_path / "few.npz", images=images, labels=[0, 2, 2, 0], class_names=np.array(["a", "b"]))
    with pytest.raises(DataError, match="label 2 but only 2 class names"):
        load_data(str(tmp_path / "few.npz"))
    np.savez(tmp_path / "float.npz", images=images, labels=[0.5, 1, 1, 0])
    with pytest.raises(DataError, match="labels must be integers"):
        load_data(str(tmp_path / "float.npz"))


def test_sources_are_one_registry(tmp_path):
    assert [s.name for s in SOURCES] == ["mnist5k", "kanjivg", "style", "folder", "image", "sketch-npz", "arrays"]
    (tmp_path / "imgs").mkdir()
    np.save(tmp_path / "a.npy", np.zeros((2, 8, 8), np.uint8))
    (tmp_path / "notes.txt").write_text("x")
    assert find_source("mnist5k").name == "mnist5k"
    assert find_source(str(tmp_path / "imgs")).name == "folder"
    assert find_source(str(tmp_path / "a.npy")).name == "arrays"
    with pytest.raises(DataError, match="unsupported data file; use a folder or image file or sketch-rnn stroke .npz or .npz/.npy file"):
        find_source(str(tmp_path / "notes.txt"))


def test_batch_fields_are_the_data_fields():
    assert [f.name for f in dataclasses.fields(Batch)] == list(FIELDS)
