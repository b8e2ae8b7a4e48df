"""A Jinja2 sandbox whose templates cannot exhaust a process.

Jinja's own sandbox keeps templates away from Python's internals but lets them
build any value: ``{{ "x" * 10**9 }}`` takes gigabytes, ``{{ 9**9**9 }}`` a CPU for
hours, two nested loops over a long string ten billion iterations. This sandbox
bounds what a template can make, and when:

- a string at most MAX_STRING characters, a list at most MAX_ITEMS items, an
  integer at most MAX_INT_BITS bits (no message needs a longer number; ``9**9**9``
  is Jinja's ``(9**9)**9``, 261 bits), a width (``center``, ``indent``, ``%999d``) at
  most MAX_WIDTH, checked *before* the operator, filter or method runs;
- at most BUDGET characters made in all by one render, and OUTPUT written;
- a render ends after ``seconds`` of its thread's CPU time (RenderBudget): every
  loop iteration, call, operator, filter and concatenation looks at the wall clock,
  and only once that has passed ``seconds`` does it ask the (dearer) CPU clock, so a
  busy machine that starves the thread does not refuse a harmless template.

Each refusal is a TemplateLimitError raised from the template's own frame, so the
caller names file and line (campaigns.content.rendering).
"""

from __future__ import annotations

import gc
import re
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import Template, nodes, pass_eval_context
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

MAX_STRING = 100_000
MAX_ITEMS = 100_000
MAX_INT_BITS = 128
MAX_WIDTH = 10_000
BUDGET = 5_000_000
OUTPUT = 1_000_000
SECONDS = 0.5

_WIDTH_FILTERS = frozenset({"center", "indent", "wordwrap", "truncate", "batch", "slice"})
_DIGITS = re.compile(r"\d+")
_ITER, _CONCAT = "_meridian_iter", "_meridian_concat"
_DICT_ATTRIBUTES = frozenset(dir(dict))


class TemplateLimitError(SecurityError):
    """A template asked for more than a message can need; the message says what."""


@dataclass
class RenderBudget:
    """What one render may still spend: time and characters made."""

    deadline: float  # on the wall clock (time.monotonic)
    made: int = 0
    cpu_start: float = 0.0  # the thread's CPU clock (time.thread_time) at the start
    seconds: float = SECONDS

    gc_start: float = 0.0  # the thread's CPU spent collecting garbage, at the start

    @classmethod
    def start(cls, seconds: float = SECONDS) -> RenderBudget:
        return cls(
            time.monotonic() + seconds,
            cpu_start=time.thread_time(),
            seconds=seconds,
            gc_start=_gc_cpu(),
        )

    def spent(self) -> bool:
        """Past the wall-clock deadline: True when the thread has really used its CPU
        budget; otherwise the deadline moves by what is left of it."""
        # A garbage collection that happens to run inside the render is the
        # process's work, not the template's (a long-lived process's full collection
        # took over the whole budget in the test suite).
        used = time.thread_time() - self.cpu_start - (_gc_cpu() - self.gc_start)
        left = self.seconds - used
        if left <= 0:
            return True
        self.deadline = time.monotonic() + left
        return False


_gc = threading.local()


def _gc_cpu() -> float:
    """CPU seconds this thread has spent in the garbage collector (gc.callbacks)."""
    return float(getattr(_gc, "total", 0.0))


def _time_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc.began = time.thread_time()
    elif (began := getattr(_gc, "began", None)) is not None:
        _gc.total = _gc_cpu() + time.thread_time() - began
        _gc.began = None


gc.callbacks.append(_time_gc)

_budget: ContextVar[RenderBudget | None] = ContextVar("meridian_render_budget", default=None)


def _tick() -> None:
    budget = _budget.get()
    if budget is not None and time.monotonic() > budget.deadline and budget.spent():
        raise TemplateLimitError(
            f"the template takes too long to render (over {SECONDS:g} s); "
            "look for a loop inside a loop, or a macro that calls itself"
        )


def _spend(value: object) -> object:
    budget = _budget.get()
    size = _size(value, MAX_STRING + 1)
    if isinstance(value, str) and size > MAX_STRING:
        raise TemplateLimitError(f"a text of more than {MAX_STRING:,} characters is refused")
    if budget is not None:
        budget.made += size
        if budget.made > BUDGET:
            raise TemplateLimitError(
                f"the template makes more than {BUDGET:,} characters in one render"
            )
    return value


def _size(value: object, stop: int) -> int:
    """Characters ``str(value)`` would take, counted up to about ``stop``."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int):
        return value.bit_length() // 3 + 1
    if isinstance(value, list | tuple | set | frozenset | dict):
        total = 2
        items = value.items() if isinstance(value, dict) else value
        for item in items:
            total += _size(item, stop - total) + 2
            if total > stop:
                break
        return total
    return 16


def _refuse_big_int(value: object, what: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_WIDTH:
        raise TemplateLimitError(f"{what} {value} is past the bound of {MAX_WIDTH:,}")


def _refuse_wide_format(fmt: object) -> None:
    if isinstance(fmt, str):
        for digits in _DIGITS.findall(fmt):
            if len(digits) > 5 or int(digits) > MAX_WIDTH:
                raise TemplateLimitError(
                    f"a format width or precision above {MAX_WIDTH:,} is refused"
                )


def _check_binop(operator: str, left: Any, right: Any) -> None:
    sequences = (str, list, tuple)
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, sequences) and isinstance(times, int):
                limit = MAX_STRING if isinstance(seq, str) else MAX_ITEMS
                if times > 0 and len(seq) * times > limit:
                    raise TemplateLimitError(
                        f"repeating a {type(seq).__name__} of length {len(seq):,} {times:,} times "
                        f"is past the bound of {limit:,}"
                    )
        both_ints = isinstance(left, int) and isinstance(right, int)
        if both_ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateLimitError(f"a number of more than {MAX_INT_BITS} bits is refused")
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
            if right > MAX_INT_BITS or left.bit_length() * right > MAX_INT_BITS:
                raise TemplateLimitError(
                    f"{left} ** {right} would be a number of more than {MAX_INT_BITS} bits"
                )
        elif isinstance(right, int | float) and abs(right) > MAX_INT_BITS:
            raise TemplateLimitError(f"an exponent above {MAX_INT_BITS} is refused")
    elif operator == "+":
        if isinstance(left, sequences) and isinstance(right, sequences):
            limit = MAX_STRING if isinstance(left, str) else MAX_ITEMS
            if len(left) + len(right) > limit:
                raise TemplateLimitError(f"a result longer than {limit:,} is refused")
    elif operator == "%" and isinstance(left, str):
        _refuse_wide_format(left)
        for arg in right if isinstance(right, tuple) else (right,):
            _refuse_big_int(arg, "a width")


def _check_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # Jinja wraps str.format (and format_map) to sandbox the format; the string is
    # the wrapped method's __self__.
    obj = getattr(obj, "__wrapped__", obj)
    owner = getattr(obj, "__self__", None)
    if isinstance(owner, str):  # str methods: ljust, center, zfill, join, replace, format
        name = getattr(obj, "__name__", "")
        for arg in (*args, *kwargs.values()):
            _refuse_big_int(arg, f"the argument of {name}()")
        if name in ("format", "format_map"):
            _refuse_wide_format(owner)
        elif name == "join" and args:
            _refuse_long_join(owner, args[0])
        elif name == "replace" and len(args) >= 2:
            _refuse_long_replace(owner, args[0], args[1])
        elif name == "expandtabs":
            _refuse_big_int(len(owner) * (args[0] if args else 8), "the expanded length")


def _refuse_long_join(separator: object, items: object) -> None:
    if isinstance(items, list | tuple):
        total = _size(list(items), MAX_STRING + 1) + len(str(separator)) * len(items)
        if total > MAX_STRING:
            raise TemplateLimitError(f"joining into more than {MAX_STRING:,} characters")


def _refuse_long_replace(text: str, old: object, new: object) -> None:
    if isinstance(old, str) and isinstance(new, str):
        count = len(text) + 1 if old == "" else text.count(old)
        if len(text) + count * (len(new) - len(old)) > MAX_STRING:
            raise TemplateLimitError(f"replacing into more than {MAX_STRING:,} characters")


def _bounded_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    passes_special = hasattr(fn, "jinja_pass_arg")  # a context or environment comes first

    def bounded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        values = list(args[1:] if passes_special else args)
        if name in _WIDTH_FILTERS:
            for arg in (*values[1:], *kwargs.values()):
                _refuse_big_int(arg, f"the argument of |{name}")
        elif name == "format" and values:
            _refuse_wide_format(values[0])
            for arg in values[1:]:
                _refuse_big_int(arg, "a width")
        elif name == "join" and values:
            _refuse_long_join(values[1] if len(values) > 1 else "", _as_list(values[0]))
        elif name == "replace" and len(values) >= 3 and isinstance(values[0], str):
            _refuse_long_replace(values[0], values[1], values[2])
        elif name in ("string", "tojson", "pprint") and _size(values[:1], BUDGET) > MAX_STRING:
            raise TemplateLimitError(f"|{name} of a value this large is refused")
        return _spend(fn(*args, **kwargs))

    for attribute in ("jinja_pass_arg",):
        if hasattr(fn, attribute):
            setattr(bounded, attribute, getattr(fn, attribute))
    return bounded


def _as_list(value: object) -> object:
    return value if isinstance(value, list | tuple) else None


def _iterate(value: Iterable[Any]) -> Iterator[Any]:
    for index, item in enumerate(value):
        if index % 64 == 0:
            _tick()
        yield item


@pass_eval_context
def _concat(eval_ctx: EvalContext, parts: list[Any]) -> str:
    _tick()
    if sum(_size(p, MAX_STRING + 1) for p in parts) > MAX_STRING:
        raise TemplateLimitError(f"joining with ~ into more than {MAX_STRING:,} characters")
    joined: str = (markup_join if eval_ctx.autoescape else str_join)(parts)
    _spend(joined)
    return joined


class _Instrument(NodeTransformer):
    """Routes every loop and every ``~`` through the checks above."""

    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802 - Jinja's name
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, _ITER, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802 - Jinja's name
        self.generic_visit(node)
        parts = nodes.List(node.nodes, lineno=node.lineno)
        return nodes.Filter(parts, _CONCAT, [], [], None, None, lineno=node.lineno)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with bounds on size, width, number and time."""

    intercepted_binops = frozenset({"*", "**", "+", "%", "//"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _bounded_filter(name, fn) for name, fn in self.filters.items()}
        self.filters[_ITER] = _iterate
        self.filters[_CONCAT] = _concat

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        # A plain dict, not Jinja's ChainMap over the environment's globals: every
        # render copies a template's globals into its context, and walking a ChainMap
        # in Python cost more than the rest of making the context. The environment's
        # globals are set once, before any template loads (as Jinja asks).
        return {**self.globals, **(d or {})}

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = _Instrument().visit(super()._parse(source, name, filename))
        tree.set_environment(self)
        return tree  # type: ignore[no-any-return]

    def getattr(self, obj: Any, attribute: str) -> Any:
        # ``patient.first_name`` on the context's plain dicts: Jinja asks Python's
        # getattr first, fails, then takes the item; the item directly is the same
        # answer (a dict's own attributes, ``items`` and the like, still go Jinja's
        # way) at a fraction of the cost, on every field of every message.
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES and attribute in obj:
            return obj[attribute]
        # ``line.strip``: one of the plain str methods, which Jinja's checks would
        # pass unchanged (no underscore, str is immutable, not ``format``).
        if type(obj) is str and attribute in _PLAIN_STR_METHODS:
            return getattr(obj, attribute)
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _tick()
        _check_binop(operator, left, right)
        return _spend(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        if not args and kwargs.keys() <= _LOOP_KEYWORDS and _plain_str_method(__obj):
            # ``line.strip()``, ``clinic.address.splitlines()``: no argument, a result no
            # longer than the text; nothing for the checks below to look at. (Inside a
            # loop Jinja passes the loop's variables, for a function that takes the
            # context: a str method does not.)
            _tick()
            return _spend(__obj())
        _tick()
        _check_call(__obj, args, kwargs)
        return _spend(super().call(__context, __obj, *args, **kwargs))


_LOOP_KEYWORDS = frozenset({"_loop_vars", "_block_vars"})

_PLAIN_STR_METHODS = frozenset(
    {"strip", "lstrip", "rstrip", "splitlines", "lower", "upper", "title", "capitalize"}
)


def _plain_str_method(obj: Any) -> bool:
    """A bound method of a plain ``str`` (not Markup) among _PLAIN_STR_METHODS."""
    return (
        type(obj) is types.BuiltinMethodType
        and type(getattr(obj, "__self__", None)) is str
        and getattr(obj, "__name__", "") in _PLAIN_STR_METHODS
    )


def render_bounded(template: Template, context: dict[str, Any], seconds: float = SECONDS) -> str:
    """Render ``template`` under a fresh RenderBudget; TemplateLimitError past a bound."""
    budget = RenderBudget.start(seconds)
    token = _budget.set(budget)
    try:
        chunks: list[str] = []
        keep = chunks.append
        written = 0
        for chunk in template.generate(context):
            written += len(chunk)
            if written > OUTPUT:
                raise TemplateLimitError(f"the template writes more than {OUTPUT:,} characters")
            keep(chunk)
        _tick()
        return "".join(chunks)
    finally:
        _budget.reset(token)
