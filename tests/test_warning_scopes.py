"""Warning scopes in two threads at once do not undo each other."""

from __future__ import annotations

import ast
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import radlens
from radlens.config import Settings
from radlens.server.app import create_app
from radlens.warning_scopes import LOCK, ignoring, raising, recording

WAIT_S = 0.5  # how long the first scope waits for the second to start inside it


def _overlapping(
    first: Callable[[], AbstractContextManager[object]],
    second: Callable[[], AbstractContextManager[object]],
    inside_second: Callable[[], None],
) -> list[BaseException]:
    """Thread A enters ``first`` and leaves it while thread B, having entered ``second``
    after A, would still be inside it: plain ``catch_warnings`` then restores A's saved
    filters under B. Returns what B raised."""
    a_inside, b_inside, a_left = threading.Event(), threading.Event(), threading.Event()
    raised: list[BaseException] = []

    def a() -> None:
        with first():
            a_inside.set()
            b_inside.wait(WAIT_S)  # with the lock, B cannot get inside: A leaves anyway
        a_left.set()

    def b() -> None:
        a_inside.wait()
        try:
            with second():
                b_inside.set()
                a_left.wait()
                inside_second()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            raised.append(exc)

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return raised


def test_an_ignoring_scope_holds_while_another_thread_leaves_its_own() -> None:
    # pytest's filterwarnings = error is the filter A saved and would put back under B.
    raised = _overlapping(ignoring, ignoring, lambda: warnings.warn("held back", stacklevel=1))
    assert raised == []


def test_a_record_keeps_only_its_own_threads_warnings() -> None:
    kept: dict[str, list[str]] = {}

    def recorder(name: str) -> Callable[[], AbstractContextManager[object]]:
        @contextmanager
        def scope() -> Iterator[None]:
            with recording() as caught:
                yield
                if name == "a":
                    warnings.warn("from a", stacklevel=1)
            kept[name] = [str(w.message) for w in caught]

        return scope

    raised = _overlapping(
        recorder("a"), recorder("b"), lambda: warnings.warn("from b", stacklevel=1)
    )
    assert raised == []
    assert kept == {"a": ["from a"], "b": ["from b"]}


def test_scopes_nest_in_one_thread_and_restore_the_filters() -> None:
    before = list(warnings.filters)
    with ignoring(), recording() as caught, raising(DeprecationWarning):
        warnings.warn("kept", UserWarning, stacklevel=1)
        try:
            warnings.warn("raised", DeprecationWarning, stacklevel=1)
        except DeprecationWarning as exc:
            assert str(exc) == "raised"
        else:
            raise AssertionError("the innermost scope raises its category")
    assert [str(w.message) for w in caught] == ["kept"]
    assert warnings.filters == before


def test_the_openapi_document_is_built_under_the_lock(tmp_path: Path) -> None:
    app = create_app(Settings(home=tmp_path))
    built = threading.Event()

    def build() -> None:
        app.openapi()
        built.set()

    with LOCK:
        thread = threading.Thread(target=build)
        thread.start()
        assert not built.wait(WAIT_S)  # waits for the scope another thread holds
    thread.join(30)
    assert built.is_set()
    assert app.openapi()["info"]["title"] == "radlens"


def _is_call_of(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Attribute) and node.func.attr == name)
        or (isinstance(node.func, ast.Name) and node.func.id == name)
    )


def test_every_catch_warnings_in_radlens_holds_the_lock() -> None:
    unguarded = []
    for path in sorted(Path(radlens.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.With | ast.AsyncWith):
                continue
            exprs = [item.context_expr for item in node.items]
            holds = any(
                isinstance(e, ast.Attribute | ast.Name) and "LOCK" in ast.unparse(e) for e in exprs
            )
            if any(_is_call_of(e, "catch_warnings") for e in exprs) and not holds:
                unguarded.append(f"{path.name}:{node.lineno}")
    assert unguarded == []
