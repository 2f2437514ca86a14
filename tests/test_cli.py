"""The `lastmile` command itself: lazy loading of the services' commands, and `wait`."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import click
import pytest
from click.testing import CliRunner

from services.cli import LazyGroup, main


def _lazy_groups(group: click.Group, ctx: click.Context) -> Iterator[LazyGroup]:
    if isinstance(group, LazyGroup):
        yield group
    for name in group.list_commands(ctx):
        command = group.commands.get(name)
        if isinstance(command, click.Group):
            yield from _lazy_groups(command, ctx)


def test_the_listed_help_of_a_lazy_command_is_the_loaded_commands():
    ctx = click.Context(main)
    checked = []
    for group in _lazy_groups(main, ctx):
        for name, (load, short_help) in group.lazy.items():
            listed = click.Command(name, help=short_help).get_short_help_str(200)
            assert load().get_short_help_str(200) == listed, name
            checked.append(name)
    assert sorted(checked) == ["billing", "plan", "planner", "status"]


def test_help_imports_no_service():
    """`lastmile --help` stays fast: it loads click and services.cli, nothing else of ours."""
    probe = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from services.cli import main\n"
        "assert CliRunner().invoke(main, ['--help']).exit_code == 0\n"
        "heavy = ('sqlalchemy', 'sqlmodel', 'celery', 'ortools', 'fastapi', 'numpy')\n"
        "print(sorted(m for m in sys.modules if m.startswith(('services.', *heavy))))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "['services.cli']"


def test_every_command_is_reachable_and_consolidation_gets_the_planner():
    result = CliRunner().invoke(main, ["billing", "consolidation", "--help"])
    assert result.exit_code == 0 and "--area" in result.output
    for path in (["plan"], ["bench", "planner"], ["billing", "rate"]):
        assert CliRunner().invoke(main, [*path, "--help"]).exit_code == 0, path


@pytest.fixture
def health_url() -> Iterator[str]:
    class Healthy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_wait_returns_once_the_api_is_healthy(health_url):
    result = CliRunner().invoke(main, ["wait", "--url", f"{health_url}/healthz"])
    assert result.exit_code == 0 and "is ready" in result.output


def test_wait_gives_up_after_its_timeout_and_says_why(health_url):
    result = CliRunner().invoke(main, ["wait", "--url", f"{health_url}/nope", "--timeout", "0"])
    assert result.exit_code == 1
    assert "did not answer within 0 s (HTTP 404)" in result.output
