"""KanjiVG as pen strokes: built-in stroke data sets read from the installed `kanjivg` package.

KanjiVG (https://kanjivg.tagaini.net, copyright Ulrich Apel, CC BY-SA 3.0) draws each character
as SVG paths, one per stroke, in the order a writer draws them. The `kanjivg` wheel (the
`strokes` extra) ships its 11,662 SVG files: 6,703 characters (kanji, kana, some Latin signs and
digits) and 4,959 variant drawings of them (files named like 05b57-Kaisho.svg: regular-script
forms and other stroke orders). Nothing is downloaded.

--data names:
- `kanjivg`: all 11,662 drawings, variants included.
- `kanjivg:main`: the 6,703 main drawings, one per character, no variants.
- `kanjivg:simple`: the drawings (variants included) of at most 6 strokes (SIMPLE_MAX_STROKES).
- `kanjivg:digits`: the kanji numerals 一 二 三 四 五 六 七 八 九 十 百 千 万 and their variant
  drawings, labelled by numeral (13 classes; a tiny set for quick runs).

Conversion: each stroke's path (absolute or relative moveto, lineto, cubic and quadratic Bezier,
smooth curves, closepath) is sampled to a polyline (CURVE_SAMPLES points per curve), scaled
from KanjiVG's 109-unit box to QuickDraw's 256-unit box (coordinates 0-255) and simplified with
Ramer-Douglas-Peucker at RDP_EPSILON = 2.0 there, the simplification of QuickDraw's simplified
drawings that sketch-rnn trained on. Strokes follow the file's stroke order; the pen lifts after
each. The stroke-3 drawings are cached (by package version and these settings) under
$LATENTFORGE_CACHE_DIR/strokes, else ~/.cache/latentforge/strokes, so only the first load parses SVG
(the whole set's cache serves every subset; a subset loaded first converts only its own files).

Drawings longer than the cap (DEFAULT_MAX_SEQ_LEN points, or DataOptions.max_seq_len) are left
out and counted; the scale factor is computed on the drawings kept, and T is the longest of them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.data.base import DataError, DataOptions, DataSource, TrainingData
from trainer.data.strokes import check_stroke3, lines_to_stroke3, normalize, rdp, scale_factor, stroke3_to_stroke5

log = logging.getLogger(__name__)

PACKAGE = "kanjivg"
CACHE_ENV = "LATENTFORGE_CACHE_DIR"  # the cache root the quality meter uses too
CURVE_SAMPLES = 16  # points per Bezier segment before simplification
FRAME = 255.0 / 109.0  # KanjiVG's 109-unit viewBox -> QuickDraw's 0-255 coordinates
RDP_EPSILON = 2.0  # in the 0-255 frame (about 0.8 % of the box), as QuickDraw's simplified drawings
DEFAULT_MAX_SEQ_LEN = 100  # points; all 11,662 fit (the longest has 83; sketch-rnn used 250 for QuickDraw)
SIMPLE_MAX_STROKES = 6
NUMERALS = "一二三四五六七八九十百千万"
CACHE_FORMAT = 1  # bump when the cached content changes

_NUMBER = r"[-+]?(?:\d*\.\d+|\d+\.?)(?:[eE][-+]?\d+)?"
_TOKEN = re.compile(rf"([MmLlHhVvCcSsQqTtZz])|({_NUMBER})")
_ARITY = {"M": 2, "L": 2, "H": 1, "V": 1, "C": 6, "S": 4, "Q": 4, "T": 2, "Z": 0}


@dataclass(frozen=True)
class Subset:
    name: str
    summary: str


SUBSETS = {
    "": Subset("kanjivg", "all 11,662 KanjiVG drawings, variants included"),
    "main": Subset("kanjivg:main", "the 6,703 main drawings, one per character"),
    "simple": Subset("kanjivg:simple", f"the drawings of at most {SIMPLE_MAX_STROKES} strokes"),
    "digits": Subset("kanjivg:digits", f"the kanji numerals {NUMERALS}, labelled"),
}


_T = np.linspace(0.0, 1.0, CURVE_SAMPLES)[1:, None]
_CUBIC = np.hstack([(1 - _T) ** 3, 3 * (1 - _T) ** 2 * _T, 3 * (1 - _T) * _T**2, _T**3])  # Bernstein basis
_QUADRATIC = np.hstack([(1 - _T) ** 2, 2 * (1 - _T) * _T, _T**2])


def _cubic(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, p3: np.ndarray) -> np.ndarray:
    return _CUBIC @ np.stack([p0, p1, p2, p3])


def _quadratic(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    return _QUADRATIC @ np.stack([p0, p1, p2])


def path_polylines(d: str) -> list[np.ndarray]:
    """An SVG path's `d` -> its subpaths as polylines (P, 2), Bezier curves sampled.

    Handles M L H V C S Q T Z in absolute (upper case) and relative (lower case) form, with
    implicit repeats (extra pairs after a moveto are linetos). Raises ValueError on bad syntax.
    """
    tokens = _TOKEN.findall(d)
    stray = _TOKEN.sub("", d).strip(" ,\t\r\n")
    if stray:
        raise ValueError(f"unexpected {stray[:10]!r} in path data {d[:40]!r}")
    lines: list[list[np.ndarray]] = []
    pos = np.zeros(2)
    start = np.zeros(2)
    last_ctrl: np.ndarray | None = None  # reflected by S (cubic) or T (quadratic)
    last_kind = ""
    i = 0
    cmd = ""
    while i < len(tokens):
        letter = tokens[i][0]
        if letter:
            cmd = letter
            i += 1
            if cmd in "Zz":
                if lines and len(lines[-1]):
                    lines[-1].append(start[None].copy())
                pos = start.copy()
                last_ctrl, last_kind = None, ""
                continue
        elif not cmd:
            raise ValueError(f"path data starts with a number: {d[:40]!r}")
        arity = _ARITY[cmd.upper()]
        args = [t[1] for t in tokens[i:i + arity]]
        if len(args) < arity or any(not a for a in args):
            raise ValueError(f"command {cmd!r} needs {arity} numbers in {d[:60]!r}")
        v = np.array([float(a) for a in args])
        i += arity
        rel = cmd.islower()
        kind = cmd.upper()
        base = pos if rel else np.zeros(2)
        if kind == "M":
            pos = base + v
            start = pos.copy()
            lines.append([pos[None].copy()])
            cmd = "l" if rel else "L"  # later pairs are implicit linetos
            last_ctrl, last_kind = None, ""
            continue
        if not lines:
            lines.append([pos[None].copy()])
        if kind == "L":
            new = base + v
            seg = new[None]
        elif kind == "H":
            new = np.array([v[0] + (pos[0] if rel else 0.0), pos[1]])
            seg = new[None]
        elif kind == "V":
            new = np.array([pos[0], v[0] + (pos[1] if rel else 0.0)])
            seg = new[None]
        elif kind == "C":
            c1, c2, new = base + v[0:2], base + v[2:4], base + v[4:6]
            seg = _cubic(pos, c1, c2, new)
            last_ctrl = c2
        elif kind == "S":
            c1 = 2 * pos - last_ctrl if last_kind == "C" and last_ctrl is not None else pos
            c2, new = base + v[0:2], base + v[2:4]
            seg = _cubic(pos, c1, c2, new)
            last_ctrl, kind = c2, "C"
        elif kind == "Q":
            c1, new = base + v[0:2], base + v[2:4]
            seg = _quadratic(pos, c1, new)
            last_ctrl = c1
        else:  # T
            c1 = 2 * pos - last_ctrl if last_kind == "Q" and last_ctrl is not None else pos
            new = base + v[0:2]
            seg = _quadratic(pos, c1, new)
            last_ctrl, kind = c1, "Q"
        if kind not in ("C", "Q"):
            last_ctrl = None
        last_kind = kind
        lines[-1].append(seg)
        pos = new
    return [np.concatenate(parts) for parts in lines]


def svg_strokes(svg: bytes | str) -> list[list[np.ndarray]]:
    """A KanjiVG file -> its strokes in drawing order, each a list of polylines in KanjiVG units."""
    root = ET.fromstring(svg)
    paths = [el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "path" and el.get("d")]

    def order(item: tuple[int, ET.Element]) -> tuple[int, int]:
        found = re.search(r"-s(\d+)$", item[1].get("id", ""))
        return (int(found.group(1)) if found else 10**6, item[0])

    return [path_polylines(el.get("d", "")) for _, el in sorted(enumerate(paths), key=order)]


def svg_to_stroke3(svg: bytes | str, epsilon: float = RDP_EPSILON) -> tuple[np.ndarray, int]:
    """A KanjiVG file -> (stroke-3 drawing in the 0-255 frame, simplified with RDP; stroke count)."""
    strokes = svg_strokes(svg)
    lines = [rdp(line * FRAME, epsilon) for stroke in strokes for line in stroke]
    return lines_to_stroke3(lines), len(strokes)


def settings() -> dict[str, object]:
    """What the converted drawings depend on: the cache key."""
    from importlib.metadata import version

    return {"package": PACKAGE, "version": version(PACKAGE), "format": CACHE_FORMAT,
            "curve_samples": CURVE_SAMPLES, "frame": FRAME, "rdp_epsilon": RDP_EPSILON}


def default_cache_dir() -> Path:
    """Where converted drawings are cached: $LATENTFORGE_CACHE_DIR/strokes, else ~/.cache/latentforge/strokes."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else Path.home() / ".cache" / "latentforge") / "strokes"


def _svg_files() -> list[Path]:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution(PACKAGE)
    except PackageNotFoundError:
        raise DataError(
            "the kanjivg stroke data sets need the 'strokes' extra: pip install -e '.[strokes]'"
        ) from None
    folder = Path(str(dist.locate_file("kanji")))
    files = sorted(folder.glob("*.svg"))
    if not files:
        raise DataError(f"the kanjivg package holds no SVG files under {folder}; reinstall it")
    return files


@dataclass
class Converted:
    """All KanjiVG drawings as stroke-3, concatenated: drawing i is rows[offsets[i]:offsets[i+1]]."""

    rows: np.ndarray  # float32 (P, 3)
    offsets: np.ndarray  # int64 (N + 1,)
    names: np.ndarray  # str (N,): file stems, e.g. "05b57" or "05b57-Kaisho"
    stroke_counts: np.ndarray  # int32 (N,)

    def drawings(self, index: np.ndarray) -> list[np.ndarray]:
        return [self.rows[self.offsets[i]:self.offsets[i + 1]] for i in index]

    @property
    def characters(self) -> list[str]:
        return [chr(int(n.split("-")[0], 16)) for n in self.names]


def _candidate_files(subset: str) -> list[Path]:
    """The SVG files a subset may take, chosen without parsing them (select() decides exactly)."""
    files = _svg_files()
    if subset == "main":
        return [f for f in files if "-" not in f.stem]
    if subset == "digits":
        return [f for f in files if chr(int(f.stem.split("-")[0], 16)) in NUMERALS]
    if subset == "simple":
        return [f for f in files if f.read_bytes().count(b"<path ") <= SIMPLE_MAX_STROKES]
    return files


def _convert(files: list[Path]) -> Converted:
    drawings, names, counts = [], [], []
    for path in files:
        try:
            drawing, n_strokes = svg_to_stroke3(path.read_bytes())
        except (ET.ParseError, ValueError) as exc:
            raise DataError(f"{path}: not a readable KanjiVG file ({exc}); reinstall the kanjivg package") from None
        drawings.append(drawing)
        names.append(path.stem)
        counts.append(n_strokes)
    lengths = np.array([len(d) for d in drawings], dtype=np.int64)
    return Converted(rows=np.concatenate(drawings).astype(np.float32),
                     offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                     names=np.array(names), stroke_counts=np.array(counts, dtype=np.int32))


def _cache_path(folder: Path, subset: str) -> Path:
    key = settings()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return folder / f"kanjivg-{key['version']}-{subset or 'all'}-{digest}.npz"


def _read_cache(path: Path) -> Converted | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return Converted(z["rows"], z["offsets"], z["names"], z["stroke_counts"])
    except Exception as exc:  # a damaged cache is rebuilt, not trusted
        log.warning("rebuilding the damaged stroke cache %s (%s)", path, exc)
        return None


def _write_cache(path: Path, table: Converted) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, rows=table.rows, offsets=table.offsets, names=table.names,
                     stroke_counts=table.stroke_counts)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only home still trains, only slower next time
        log.warning("could not cache KanjiVG strokes in %s (%s)", path.parent, exc)


def converted(subset: str = "", cache_dir: Path | None = None) -> Converted:
    """The drawings a subset draws from, as stroke-3: cached, else converted from SVG and cached.

    The whole set's cache serves every subset; without it a subset converts (and caches) only
    its own files, so a small subset is quick even on a cold cache.
    """
    folder = cache_dir or default_cache_dir()
    table = _read_cache(_cache_path(folder, ""))
    if table is not None:
        return table
    path = _cache_path(folder, subset)
    table = _read_cache(path)
    if table is None:
        started = time.perf_counter()
        table = _convert(_candidate_files(subset))
        log.info("converted %d KanjiVG drawings in %.1f s", len(table.names), time.perf_counter() - started)
        _write_cache(path, table)
    return table


def select(table: Converted, subset: str) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """The drawings of a subset: (indices, labels or None, class names)."""
    if subset == "":
        return np.arange(len(table.names)), None, []
    if subset == "main":
        return np.flatnonzero(np.char.find(table.names.astype(str), "-") < 0), None, []
    if subset == "simple":
        return np.flatnonzero(table.stroke_counts <= SIMPLE_MAX_STROKES), None, []
    if subset == "digits":
        chars = table.characters
        index = np.array([i for i, c in enumerate(chars) if c in NUMERALS], dtype=np.int64)
        labels = np.array([NUMERALS.index(chars[i]) for i in index], dtype=np.int64)
        return index, labels, list(NUMERALS)
    raise DataError(f"no KanjiVG subset {subset!r}; use one of {', '.join(s.name for s in SUBSETS.values())}")


def load_kanjivg(subset: str = "", max_seq_len: int | None = None, cache_dir: Path | None = None) -> TrainingData:
    """A KanjiVG subset as stroke-5 training data (see the module docstring for the subsets)."""
    table = converted(subset, cache_dir)
    index, labels, class_names = select(table, subset)
    where = SUBSETS[subset].name
    cap = max_seq_len or DEFAULT_MAX_SEQ_LEN
    drawings = table.drawings(index)
    kept_mask = np.array([len(d) <= cap for d in drawings])
    kept, too_long = check_stroke3(drawings, where, cap)
    scale = scale_factor(kept)
    longest = max(len(d) for d in kept)
    strokes, lengths = stroke3_to_stroke5(normalize(kept, scale), longest)
    if too_long:
        log.warning("%s: left out %d of %d drawings longer than %d points", where, too_long, len(drawings), cap)
    return TrainingData(source=where, strokes=strokes, lengths=lengths,
                        labels=None if labels is None else labels[kept_mask], class_names=class_names,
                        stroke_scale=scale, too_long=too_long)


class KanjiVGSet(DataSource):
    """`kanjivg` and `kanjivg:<subset>`: pen strokes from the installed kanjivg package."""

    name = "kanjivg"
    kind = "strokes"
    summary = "'kanjivg' or 'kanjivg:main|simple|digits' (KanjiVG pen strokes, stroke-5)"

    def builtin_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in SUBSETS.values())

    def claims(self, spec: str) -> bool:
        return spec == "kanjivg" or spec.startswith("kanjivg:")

    def load(self, spec: str, options: DataOptions) -> TrainingData:
        subset = spec.partition(":")[2]
        if subset not in SUBSETS:
            names = ", ".join(s.name for s in SUBSETS.values())
            raise DataError(f"no KanjiVG subset {subset!r}; use one of {names}")
        return load_kanjivg(subset, options.max_seq_len)

