"""Data loading: every source, and a clear refusal of bad data before training starts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer.data import DataError, load_data


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
    with pytest.raises(DataError, match="neither 'mnist5k' nor an existing"):
        load_data(str(tmp_path / "nope"))
