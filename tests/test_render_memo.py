"""IdentityMemo: each object rendered once per network, right texts past its limit."""

from __future__ import annotations

from collections.abc import Callable

from hercc.backends.memo import IdentityMemo


class Thing:
    def __init__(self, name: str) -> None:
        self.name = name


def test_renders_each_object_once_per_network_and_stays_right_past_its_limit() -> None:
    calls: list[tuple[str, str]] = []

    def renderer(network: str) -> Callable[[Thing], str]:
        def render(thing: Thing) -> str:
            calls.append((thing.name, network))
            return f"{thing.name}@{network}"

        return render

    memo = IdentityMemo(limit=3)
    a, b, c, d = (Thing(n) for n in "abcd")
    assert memo.texts([a, b], "x", renderer("x")) == ["a@x", "b@x"]
    assert memo.texts([b, a], "x", renderer("x")) == ["b@x", "a@x"]
    assert calls == [("a", "x"), ("b", "x")]
    assert memo.text(a, "y", renderer("y")) == "a@y"  # another network, another text
    assert memo.texts([c, d, a, b], "x", renderer("x")) == ["c@x", "d@x", "a@x", "b@x"]
    assert memo.texts([a], "y", renderer("y")) == ["a@y"]
    assert memo.texts([], "x", renderer("x")) == []
