"""OwnedChildren: values per owner object, built once, never keeping an owner alive."""

from __future__ import annotations

import gc
import weakref

from services.rpc.metrics import OwnedChildren


class _Owner:  # stands for a loaded model version
    pass


def test_values_are_built_once_per_owner_and_key_and_owners_are_not_kept_alive():
    built: list[tuple[int, str]] = []
    children = OwnedChildren(lambda owner, key: built.append((id(owner), key)) or object())
    a, b = _Owner(), _Owner()
    first = children.get(a, "Generate")
    assert children.get(a, "Generate") is first  # the last owner again
    other = children.get(b, "Generate")
    assert other is not first and children.get(a, "Generate") is first and children.get(b, "Generate") is other
    assert children.get(a, "Interpolate") is not first
    assert len(built) == 3
    gone = weakref.ref(a)
    del a
    gc.collect()
    assert gone() is None  # neither the table nor the last-owner shortcut holds it
    again = _Owner()
    assert children.get(again, "Generate") is not first
    assert len(built) == 4
