"""How many 2x up/down-sampling stages a convolutional network needs for an image size."""

from __future__ import annotations


def plan_resolution(size: int) -> tuple[int, int]:
    """Return (base, stages) with size == base * 2**stages, 4 <= base <= 7, stages >= 1.

    28 -> (7, 2), 32 -> (4, 3), 64 -> (4, 4), 48 -> (6, 3). Sizes with no such split
    (odd sizes, or too small) are refused with a message that lists good ones.
    """
    base, stages = size, 0
    while base % 2 == 0 and base > 7:
        base //= 2
        stages += 1
    if stages < 1 or not 4 <= base <= 7:
        raise ValueError(
            f"image size {size} is not supported by the convolutional networks: it must be "
            "4..7 times a power of two, at least 8 (e.g. 28, 32, 48, 64, 128); "
            "pick one with --image-size"
        )
    return base, stages
