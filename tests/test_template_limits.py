"""Templates that try to exhaust a process are refused, naming file and line.

Each of the 24 payloads is written at line 2 of a campaign's ``sms.txt.j2`` and
checked in a subprocess of its own, as ``campaigns apply`` checks it. The
subprocess prints how much its peak resident memory grew; the test asserts the
refusal names the file and line and that the growth stayed under 200 MB. Time is
not asserted: a payload that is not stopped hits the subprocess timeout and fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jinja2 import StrictUndefined, UndefinedError
from jinja2.exceptions import SecurityError
from markupsafe import Markup

from campaigns.content.sandbox import (
    BoundedSandbox,
    RenderBudget,
    TemplateLimitError,
    render_bounded,
)
from tests.conftest import ROOT

MEMORY_BOUND_MB = 200
NS = "{% set ns = namespace(s='xx', l=[1]) %}"
PAYLOADS: dict[str, str] = {
    "string times a huge number": '{{ "x" * 10**9 }}',
    "a huge range as a list": "{{ range(10**9)|list }}",
    "a tower of powers": "{{ 9**9**9 }}",
    "a list times a huge number": "{{ [1] * 10**9 }}",
    "a string doubled with ~ in a loop": NS
    + "{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "a string doubled with + in a loop": NS
    + "{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
    "a list doubled with + in a loop": NS
    + "{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}",
    "a list doubled with * in a loop": NS
    + "{% for i in range(64) %}{% set ns.l = ns.l * 2 %}{% endfor %}{{ ns.l|length }}",
    "join of many long strings": '{{ (["x" * 90000] * 90000)|join }}',
    "str.join of many long strings": '{{ "".join(["x" * 90000] * 90000) }}',
    "center to a huge width": '{{ "x"|center(10**9) }}',
    "printf format to a huge width": '{{ "%999999999d"|format(1) }}',
    "str.format to a huge width": '{{ "{:999999999}".format(1) }}',
    "wordwrap to a huge width": '{{ ("word " * 1000)|wordwrap(10**9) }}',
    "indent by a huge width": '{{ ("x\\n" * 50000)|indent(10**6) }}',
    "nested loops over ranges": "{% for a in range(100000) %}{% for b in range(100000) %}"
    "{% endfor %}{% endfor %}",
    "nested loops over a long string": '{% set s = "x" * 100000 %}{% for a in s %}'
    "{% for b in s %}{% endfor %}{% endfor %}",
    "a macro that calls itself": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "a macro that calls itself twice": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}"
    "{% endif %}{% endmacro %}{{ f(60) }}",
    "include of a missing template": '{% include "t/missing.j2" %}',
    "include of itself": '{% include "t/sms.txt.j2" %}',
    "extends in a loop": '{% extends "t/base.j2" %}',
    "extends of a missing template": '{% extends "t/missing-base.j2" %}',
    "replace into a huge string": '{{ ("x" * 90000)|replace("x", "x" * 90000) }}',
}
assert len(PAYLOADS) == 24

_CHECK = """
import json, resource, sys
from pathlib import Path
from campaigns.content.rendering import Renderer
from campaigns.errors import InputError

root = Path(sys.argv[1])
renderer = Renderer(root)
sample = {"patient": {"first_name": "A", "last_name": "B"}, "clinic": {}, "campaign": {}}
renderer.check("warm", ["sms"], {"sms": sample})  # imports and first compile
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    renderer.check("t", ["sms"], {"sms": sample})
    problems = None
except InputError as exc:
    problems = [str(p) for p in exc.problems]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"problems": problems, "growth_mb": (after - before) / 1024}))
"""


@pytest.mark.parametrize("payload", list(PAYLOADS.values()), ids=list(PAYLOADS))
def test_a_template_that_would_exhaust_the_process_is_refused_with_file_and_line(
    payload: str, tmp_path: Path
) -> None:
    (tmp_path / "warm").mkdir()
    (tmp_path / "warm" / "sms.txt.j2").write_text("Hello {{ patient.first_name }}\n")
    folder = tmp_path / "t"  # the campaign's folder; tmp_path is MERIDIAN_TEMPLATES_DIR
    folder.mkdir()
    (folder / "sms.txt.j2").write_text(f"Hello\n{payload}\n")
    (folder / "base.j2").write_text('{% extends "t/sms.txt.j2" %}\n')
    done = subprocess.run(
        [sys.executable, "-c", _CHECK, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    print(f"peak RSS growth {result['growth_mb']:.1f} MB: {result['problems']}")
    assert result["problems"], "the payload was not refused"
    (problem,) = result["problems"]
    where = problem.split(": ", 1)[0]
    assert where in ("t/sms.txt.j2:2", "t/base.j2:1"), problem  # under the templates folder
    assert result["growth_mb"] < MEMORY_BOUND_MB


def test_a_render_starved_by_a_busy_machine_is_not_refused_but_one_that_spins_is() -> None:
    """The wall clock passing the budget is only a hint: what counts is the CPU time
    the render's thread has used (a loaded machine made a harmless template fail)."""
    budget = RenderBudget.start(0.05)
    budget.deadline = time.monotonic() - 1.0  # the wall clock ran on while the thread waited
    assert not budget.spent()
    assert budget.deadline > time.monotonic()  # moved by what is left of the CPU budget
    while time.thread_time() - budget.cpu_start <= 0.05:
        pass  # the template's loop, spinning
    assert budget.spent()


def test_a_plain_text_method_is_called_as_the_sandbox_would_and_markup_still_escapes() -> None:
    """The sandbox calls ``strip()``, ``splitlines()`` and the like on plain text
    directly; the result must be what Jinja's own sandbox gives, Markup's methods and
    methods with arguments still go the checked way, and a method that is not
    allowed (``str.format`` with a wide field) is still refused."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    source = (
        "{% for l in a.splitlines() if l.strip() %}[{{ l.strip() }}|{{ l.upper() }}]{% endfor %}"
        "{{ b.title() }}{{ m.strip() }}{{ a.replace('x', 'y') }}"
    )
    context = {"a": " one\n\n two x \n", "b": "dr. ada", "m": Markup(" <i>b</i> ")}
    ours = render_bounded(BoundedSandbox(autoescape=True).from_string(source), context)
    theirs = ImmutableSandboxedEnvironment(autoescape=True).from_string(source).render(context)
    assert ours == theirs
    assert "<i>b</i>" in ours  # Markup stays Markup
    with pytest.raises(TemplateLimitError):
        render_bounded(BoundedSandbox().from_string("{{ '{:>99999}'.format(1) }}"), {})


def test_a_template_sees_jinjas_globals_and_its_own_and_private_attributes_stay_refused() -> None:
    """The sandbox hands a template its globals as a plain dict and takes a plain str
    method without Jinja's checks: the environment's globals (``range``) and a
    template's own still resolve, a template's own do not leak into the environment,
    and an underscore attribute, on a str or on its method, is still refused."""
    env = BoundedSandbox(undefined=StrictUndefined)
    own = env.from_string("{{ range(3)|list }} {{ greeting }}", globals={"greeting": "hi"})
    assert render_bounded(own, {}) == "[0, 1, 2] hi"
    assert "greeting" not in env.globals
    with pytest.raises(UndefinedError):
        render_bounded(env.from_string("{{ greeting }}"), {})
    for source in ("{{ a.__class__ }}", "{{ a.strip.__self__ }}", "{{ a.__len__() }}"):
        with pytest.raises(SecurityError):
            render_bounded(env.from_string(source), {"a": "x"})
