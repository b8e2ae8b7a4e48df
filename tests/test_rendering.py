from __future__ import annotations

from pathlib import Path

import pytest

from campaigns.content.rendering import Clinic, Renderer, build_context
from campaigns.errors import InputError

CLINIC = Clinic("Harbor <Acupuncture>", "1 Main St\nBoston, MA 02110", "(617) 555-0142")


def make(tmp_path: Path, files: dict[str, str]) -> Renderer:
    for name, text in files.items():
        path = tmp_path / "t" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return Renderer(tmp_path)


def context(email: bool = False) -> dict[str, object]:
    return build_context(
        first_name="Ana",
        last_name="Li",
        clinic=CLINIC,
        campaign="c",
        unsubscribe_url="https://x/u/1" if email else None,
    )


def refusal(renderer: Renderer, channel: str = "sms") -> str:
    with pytest.raises(InputError) as caught:
        renderer.check("t", [channel], {channel: context(channel == "email")})  # type: ignore[list-item,dict-item]
    return str(caught.value)


def test_a_syntax_error_is_refused_naming_template_and_line(tmp_path: Path) -> None:
    r = make(tmp_path, {"sms.txt.j2": "Hi\n{{ patient.first_name }\n"})
    text = refusal(r)
    assert "t/sms.txt.j2:2" in text and "syntax error" in text


def test_an_undefined_variable_is_refused_naming_template_and_line(tmp_path: Path) -> None:
    r = make(tmp_path, {"sms.txt.j2": "Hi\nthere\n{{ patient.frist_name }}\n"})
    text = refusal(r)
    assert "sms.txt.j2:3" in text and "unknown variable" in text and "frist_name" in text


def test_reaching_python_internals_is_refused_by_the_sandbox(tmp_path: Path) -> None:
    r = make(tmp_path, {"sms.txt.j2": "{{ ''.__class__.__mro__ }}"})
    text = refusal(r)
    assert "sms.txt.j2:1" in text
    assert "sandbox" in text or "unsafe" in text


def test_a_missing_template_is_named(tmp_path: Path) -> None:
    r = make(tmp_path, {"sms.txt.j2": "Hi"})
    assert "email.subject.j2" in refusal(r, "email")


def test_html_is_autoescaped_and_text_is_not(tmp_path: Path) -> None:
    r = make(
        tmp_path,
        {
            "email.subject.j2": "{{ clinic.name }}",
            "email.html.j2": "<p>{{ clinic.name }}</p>",
            "email.txt.j2": "{{ clinic.name }}",
        },
    )
    out = r.render("t", "email", context(email=True))
    assert out.html == "<p>Harbor &lt;Acupuncture&gt;</p>"
    assert out.body == "Harbor <Acupuncture>"
    assert out.subject == "Harbor <Acupuncture>"


def test_each_template_is_compiled_once_per_process(tmp_path: Path) -> None:
    r = make(tmp_path, {"sms.txt.j2": "Hi {{ patient.first_name }}"})
    first = r.env.get_template("t/sms.txt.j2")
    (tmp_path / "t" / "sms.txt.j2").write_text("changed")
    assert r.env.get_template("t/sms.txt.j2") is first
    assert r.render("t", "sms", context()).body == "Hi Ana"
