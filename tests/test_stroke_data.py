"""Pen-stroke data: the stroke-3 / stroke-5 formats, RDP, scaling, KanjiVG, sketch-rnn .npz files,
the refusal of bad drawings, and rendering."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.data import DataError, DataSpec, find_source, load_data
from trainer.data.kanjivg import NUMERALS, path_polylines, svg_to_stroke3
from trainer.data.strokes import (
    check_stroke3,
    check_stroke5,
    lengths_of,
    lines_to_stroke3,
    normalize,
    rdp,
    render,
    scale_factor,
    stroke3_to_stroke5,
    stroke5_to_stroke3,
)

# An "L" drawn as two strokes, then a dot: the pen lifts after rows 1, 3 and 4.
DRAWING = np.array([[0, 10, 0], [0, 10, 1], [5, -20, 0], [10, 0, 1], [3, 3, 1]], np.float32)


def _drawings(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        d = rng.integers(-30, 30, (int(rng.integers(3, 12)), 3)).astype(np.int16)
        d[:, 2] = rng.random(len(d)) < 0.3
        d[-1, 2] = 1
        out.append(d)
    return out


def test_stroke3_stroke5_round_trip_and_padding_contract():
    drawings = [DRAWING, DRAWING[:2], DRAWING[:1]]
    strokes, lengths = stroke3_to_stroke5(drawings, max_seq_len=7)
    assert strokes.shape == (3, 7, 5) and strokes.dtype == np.float32
    assert lengths.tolist() == [5, 2, 1] and lengths.dtype == np.int64
    np.testing.assert_array_equal(strokes[0, :5, 2], 1 - DRAWING[:, 2])  # p1: pen down to the next point
    np.testing.assert_array_equal(strokes[0, :5, 3], DRAWING[:, 2])  # p2: pen lifted after this point
    assert (strokes[0, :5, 4] == 0).all()
    for s, n in zip(strokes, lengths):
        assert (s[n:] == [0, 0, 0, 0, 1]).all()  # padding rows mark the end
    check_stroke5(strokes, lengths, "test")
    np.testing.assert_array_equal(lengths_of(strokes), lengths)
    assert lengths_of(strokes[:, :2]).tolist() == [2, 2, 1]  # cut before its end: the whole T
    for back, original in zip(stroke5_to_stroke3(strokes, lengths), drawings):
        np.testing.assert_array_equal(back, original)
    with pytest.raises(DataError, match="more than max_seq_len=4"):
        stroke3_to_stroke5(drawings, max_seq_len=4)


def test_lines_to_stroke3_offsets_and_pen_lifts():
    lines = [np.array([[0, 0], [0, 10], [0, 20]]), np.array([[5, 0], [15, 0]]), np.array([[18, 3]])]
    np.testing.assert_array_equal(lines_to_stroke3(lines), DRAWING)


def test_rdp_keeps_corners_and_drops_near_collinear_points():
    line = np.array([[0, 0], [1, 0.1], [2, -0.1], [3, 0], [3.1, 1], [2.95, 2], [3, 3]], float)
    np.testing.assert_array_equal(rdp(line, 0.5), [[0, 0], [3, 0], [3, 3]])
    assert len(rdp(line, 0.01)) == len(line)  # nothing is within 0.01 of a chord
    np.testing.assert_array_equal(rdp(line[:2], 5.0), line[:2])
    loop = np.array([[0, 0], [4, 0], [4, 4], [0, 0]], float)  # closed: first point == last point
    np.testing.assert_array_equal(rdp(loop, 0.5), loop)


def test_scale_factor_normalises_offsets_to_unit_std():
    drawings = _drawings(50)
    scale = scale_factor(drawings)
    assert scale == pytest.approx(np.std(np.concatenate([d[:, :2].ravel() for d in drawings])))
    scaled = normalize(drawings, scale)
    assert np.std(np.concatenate([d[:, :2].ravel() for d in scaled])) == pytest.approx(1.0, abs=1e-5)
    assert all((s[:, 2] == d[:, 2]).all() for s, d in zip(scaled, drawings))


def test_svg_path_commands_absolute_relative_and_curves():
    (line,) = path_polylines("M10,10 L20,10 l0,10 H5 v-5 h2 V0 z")
    np.testing.assert_array_equal(line, [[10, 10], [20, 10], [20, 20], [5, 20], [5, 15], [7, 15], [7, 0], [10, 10]])
    (curve,) = path_polylines("m1,1c0,0 10,0 10,0s10,0 10,10")  # relative moveto at the start is absolute
    np.testing.assert_allclose(curve[[0, -1]], [[1, 1], [21, 11]])
    (quad,) = path_polylines("M0,0Q5,10 10,0T20,0")
    np.testing.assert_allclose(quad[-1], [20, 0])
    assert quad[:, 1].max() > 4 and quad[:, 1].min() < -4  # T reflects the control point below the axis
    assert len(path_polylines("M0,0L1,1M5,5L6,6")) == 2  # two subpaths: two pen-down polylines
    with pytest.raises(ValueError, match="needs 6 numbers"):
        path_polylines("M0,0C1,2,3")


def test_kanjivg_numeral_one_is_one_horizontal_stroke():
    svg = ('<svg xmlns="http://www.w3.org/2000/svg"><g><path id="kvg:04e00-s1" d="M11,54.25c3.19,0.62,6.25,'
           '0.75,9.73,0.5c20.64-1.5,50.39-5.12,68.58-5.24c3.6-0.02,5.77,0.24,7.57,0.49"/></g></svg>')
    drawing, n_strokes = svg_to_stroke3(svg)
    assert n_strokes == 1 and drawing[-1, 2] == 1 and (drawing[:-1, 2] == 0).all()
    assert 2 <= len(drawing) <= 8  # RDP keeps a handful of the 46 sampled points
    width = drawing[:, 0].sum() / (255 / 109)  # in KanjiVG units
    assert width == pytest.approx(9.73 + 68.58 + 7.57, abs=0.01) and abs(drawing[:, 1].sum()) < 15


def test_kanjivg_digits_are_labelled_stroke5():
    data = load_data("kanjivg:digits")
    assert find_source("kanjivg:digits").name == "kanjivg"
    n, t, five = data.strokes.shape
    assert n >= 13 and five == 5 and data.lengths.shape == (n,) and 1 <= data.lengths.min() <= data.lengths.max() == t
    assert data.class_names == list(NUMERALS) and sorted(set(data.labels.tolist())) == list(range(13))
    check_stroke5(data.strokes, data.lengths, "kanjivg:digits")
    one = data.strokes[data.labels.tolist().index(0)]  # 一: one stroke, so one pen lift, at its end
    assert one[:, 3].sum() == 1
    spec = data.spec
    assert spec.fields == ("labels", "strokes", "lengths") and spec.num_classes == 13
    assert spec.max_seq_len == t and spec.stroke_scale == pytest.approx(data.stroke_scale) and spec.stroke_scale > 1
    assert DataSpec.from_dict(spec.to_dict()) == spec


def test_kanjivg_simple_subset_has_unit_offsets_and_few_strokes():
    data = load_data("kanjivg:simple")
    assert len(data) > 500 and data.labels is None and data.too_long == 0
    real = np.arange(data.max_seq_len)[None] < data.lengths[:, None]
    assert data.strokes[..., :2][real].std() == pytest.approx(1.0, abs=1e-4)
    assert (data.strokes[..., 3].sum(1) <= 6).all()  # at most 6 pen lifts: at most 6 strokes
    capped = load_data("kanjivg:simple", max_seq_len=10)
    assert capped.max_seq_len <= 10 and capped.too_long > 0 and len(capped) + capped.too_long == len(data)


def test_unknown_kanjivg_subset_names_the_known_ones():
    with pytest.raises(DataError, match="no KanjiVG subset 'kana'; use one of kanjivg, kanjivg:main"):
        load_data("kanjivg:kana")


def test_old_specs_without_stroke_fields_still_load():
    old = {"source": "mnist5k", "count": 5000, "shape": [1, 28, 28], "fields": ["images", "labels"],
           "num_classes": 10, "class_names": [str(d) for d in range(10)], "skipped_files": 0}
    spec = DataSpec.from_dict(old)
    assert spec.stroke_scale is None and spec.max_seq_len is None and spec.too_long == 0


@pytest.mark.parametrize("bad, message", [
    ([np.zeros((0, 3))], "drawing 0 is empty"),
    ([DRAWING, np.array([[0, np.nan, 0]], np.float32)], "drawing 1 contains NaN or infinity"),
    ([np.array([[0, np.inf, 1]])], "NaN or infinity"),
    ([np.zeros((4, 2))], r"drawing 0 has shape \(4, 2\); stroke-3 drawings are \(L, 3\)"),
    ([np.zeros(3)], r"shape \(3,\)"),
    ([np.array([[1, 1, 2]])], r"pen states \[2.0\]; the third column must be 0 or 1"),
    ([np.array(["a", "b", "c"])[None]], "not numbers"),
    ([], "holds no drawings"),
    ([np.zeros((300, 3))], "all 1 drawings are longer than max_seq_len=250"),
])
def test_bad_drawings_are_refused_with_what_to_fix(bad, message):
    with pytest.raises(DataError, match=message):
        check_stroke3(bad, "d.npz:train", 250)


def test_too_long_drawings_are_left_out_and_counted():
    kept, too_long = check_stroke3([DRAWING, np.zeros((300, 3)), DRAWING], "x", 250)
    assert len(kept) == 2 and too_long == 1


def _obj(drawings: list[np.ndarray]) -> np.ndarray:
    out = np.empty(len(drawings), dtype=object)
    out[:] = drawings
    return out


def test_sketch_rnn_npz_is_read_from_train(tmp_path):
    path = tmp_path / "cat.npz"
    np.savez(path, train=_obj(_drawings(40)), valid=_obj(_drawings(5, 1)), test=_obj(_drawings(6, 2)))
    assert find_source(str(path)).name == "sketch-npz"
    data = load_data(str(path))
    assert data.strokes.shape == (40, 11, 5) and data.labels is None
    check_stroke5(data.strokes, data.lengths, "cat")
    assert data.stroke_scale == pytest.approx(scale_factor(_drawings(40)))
    back = stroke5_to_stroke3(data.strokes, data.lengths)
    np.testing.assert_allclose(back[3][:, :2] * data.stroke_scale, _drawings(40)[3][:, :2], atol=1e-4)
    capped = load_data(str(path), max_seq_len=5)
    assert capped.max_seq_len <= 5 and capped.too_long == sum(len(d) > 5 for d in _drawings(40))


def test_npz_with_images_stays_an_image_file(tmp_path):
    path = tmp_path / "both.npz"
    np.savez(path, images=np.zeros((4, 8, 8), np.uint8), train=_obj(_drawings(3)))
    assert find_source(str(path)).name == "arrays"
    np.savez(tmp_path / "plain.npz", x=np.zeros((4, 8, 8), np.uint8))
    assert find_source(str(tmp_path / "plain.npz")).name == "arrays"


def test_sketch_npz_bad_drawings_and_pickles_are_refused(tmp_path):
    np.savez(tmp_path / "nan.npz", train=_obj([DRAWING, np.array([[np.nan, 0, 1]])]))
    with pytest.raises(DataError, match=r"nan.npz:train: drawing 1 contains NaN"):
        load_data(str(tmp_path / "nan.npz"))
    np.savez(tmp_path / "flat.npz", train=_obj([np.zeros((5, 2), np.int16)]))
    with pytest.raises(DataError, match=r"shape \(5, 2\)"):
        load_data(str(tmp_path / "flat.npz"))

    class Evil:
        def __reduce__(self):
            return (print, ("this must not run",))

    np.savez(tmp_path / "evil.npz", train=_obj([Evil()]))
    with pytest.raises(DataError, match="refused to load builtins.print: only NumPy arrays are allowed"):
        load_data(str(tmp_path / "evil.npz"))


def test_render_puts_ink_where_the_strokes_are():
    # A horizontal line across the top and a vertical one down the left: an upside-down "L".
    drawing = np.array([[10, 0, 1], [-10, 0, 0], [0, 10, 1]], np.float32)
    strokes, lengths = stroke3_to_stroke5([drawing], 3)
    image = render(strokes, lengths, size=32)
    assert image.shape == (1, 1, 32, 32) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    img = image[0, 0]
    assert img[1:6, 8:24].max(0).min() > 0.5 and img[8:24, 1:6].max(1).min() > 0.5  # ink along the top and left
    assert img[12:28, 12:28].max() == 0.0  # the lower right stays black
    digits = load_data("kanjivg:digits")
    images = render(digits.strokes, digits.lengths, size=28)
    assert images.shape == (len(digits), 1, 28, 28) and (images.reshape(len(digits), -1).max(1) == 1.0).all()
