"""Log lines: tokens and colour codes cut out of request lines, in both formats."""

from __future__ import annotations

import io
import json
import logging

from campaigns import logs

LINE = '127.0.0.1 - - "\x1b[1mGET /unsubscribe/eyJwIjoxMn0.ZK2x.abc?x=1 HTTP/1.1\x1b[0m" 200 -'
QUERY = "GET /api/runs/1?token=s3cr3t-tok&x=2 Authorization: Bearer abc.def-ghi"


def _emit(fmt: logs.LogFormat, message: str) -> str:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        logs.configure(fmt, "INFO", stream=stream)
        logging.getLogger("werkzeug").info("%s", message)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
    return stream.getvalue()


def test_request_lines_lose_their_tokens_and_colour_codes_in_text_and_json() -> None:
    for fmt in ("text", "json"):
        written = _emit(fmt, LINE) + _emit(fmt, QUERY)
        if fmt == "json":
            written = "".join(json.loads(line)["message"] for line in written.splitlines())
        assert "eyJwIjoxMn0" not in written and "/unsubscribe/[token]" in written
        assert "s3cr3t-tok" not in written and "token=[token]" in written
        assert "abc.def-ghi" not in written and "Bearer [token]" in written
        assert "\x1b[" not in written
