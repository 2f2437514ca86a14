"""The `lastmile` command: each service contributes its own commands.

Start-up stays fast: a command's modules are imported only when that command runs, so
`lastmile --help` imports nothing but click. The services' command groups are loaded
by the small functions below, which `LazyGroup` calls on first use.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import click


class LazyGroup(click.Group):
    """A group whose `lazy` subcommands are built by a loader when first needed.

    `lazy` maps a name to (loader, short help): `--help` lists the short help without
    loading anything (tests/test_cli.py keeps it equal to the loaded command's).
    """

    def __init__(
        self,
        *args: Any,
        lazy: dict[str, tuple[Callable[[], click.Command], str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            self.add_command(self.lazy[cmd_name][0](), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click's, with unloaded commands' help taken from `lazy`."""
        listed = {
            name: self.commands.get(name) or click.Command(name, help=self.lazy[name][1])
            for name in self.list_commands(ctx)
        }
        shown = {name: command for name, command in listed.items() if not command.hidden}
        if not shown:
            return
        limit = formatter.width - 6 - max(len(name) for name in shown)
        with formatter.section("Commands"):
            formatter.write_dl(
                [(name, command.get_short_help_str(limit)) for name, command in shown.items()]
            )


def _plan() -> click.Command:
    from services.planner.cli import plan

    return plan


def _bench_planner() -> click.Command:
    from services.planner.bench import bench_planner

    return bench_planner


def _planner_cost_model() -> Any:
    from services.planner.standalone import PlannerCostModel

    return PlannerCostModel()


def _status() -> click.Command:
    from services.api.status import status

    return status


def _billing() -> click.Command:
    from services.billing.cli import billing, consolidation_command

    # Billing may not import the planner: the assembler hands it the planner's cost model.
    billing.add_command(consolidation_command(_planner_cost_model))
    return billing


@click.group(
    cls=LazyGroup,
    lazy={
        "billing": (_billing, "Usage, prices and invoices."),
        "plan": (_plan, "Plan every open delivery of an area and day now."),
        "status": (_status, "Dependencies, queues, outbox lag, last waves, failing webhooks."),
    },
)
def main() -> None:
    """Lastmile: last-mile delivery as a cloud service."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="API processes.")
def serve(host: str, port: int, workers: int) -> None:
    """Run the API (GraphQL, OAuth, tracking pages, CSV exports)."""
    _share_metrics("api")
    os.environ["LASTMILE_PROCESS"] = "api"
    import uvicorn

    from services.core import logs
    from services.core.settings import get_settings

    logs.configure("api")
    uvicorn.run(
        "services.api.app:create_server_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        ws_max_size=get_settings().max_request_bytes,
        log_config=None,  # our JSON lines (services.core.logs), no access log with paths
        access_log=False,
    )


def _share_metrics(kind: str) -> None:
    """Multi-process metrics for this process and the ones it starts: a fresh directory
    of their own, unless PROMETHEUS_MULTIPROC_DIR already names one (emptied by whoever
    set it). Before anything imports prometheus_client, which reads it once."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    import shutil

    from services.core.settings import get_settings

    directory = get_settings().var_dir / "metrics" / f"{kind}-{os.getpid()}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


@main.command()
@click.option("--queues", default="planner,billing,webhooks", show_default=True)
@click.option("--concurrency", default=None, type=int, help="Worker processes (default: cores).")
def worker(queues: str, concurrency: int | None) -> None:
    """Run a Celery worker for the planner, billing and webhooks queues."""
    _share_metrics("worker")
    os.environ["LASTMILE_PROCESS"] = "worker"
    from services.core.celery_app import celery_app
    from services.core.settings import get_settings

    port = get_settings().worker_metrics_port
    if port:
        from prometheus_client import CollectorRegistry, multiprocess, start_http_server

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        start_http_server(port, registry=registry)

    argv = ["worker", "--loglevel=INFO", f"--queues={queues}"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    celery_app.worker_main(argv)


@main.command()
def scheduler() -> None:
    """Run Celery beat: the planning waves and the other periodic jobs (one of many acts)."""
    os.environ["LASTMILE_PROCESS"] = "scheduler"
    from services.core.celery_app import celery_app
    from services.core.settings import get_settings

    schedule = get_settings().var_dir / "celerybeat-schedule"
    celery_app.start(["beat", "--loglevel=INFO", f"--schedule={schedule}"])


@main.command()
@click.option(
    "--url", default="http://127.0.0.1:8000/healthz", show_default=True, help="Health URL."
)
@click.option(
    "--timeout", default=120.0, show_default=True, type=click.FloatRange(min=0), help="Seconds."
)
def wait(url: str, timeout: float) -> None:
    """Wait until the API answers its health check; exit 1 if it does not in time."""
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                click.echo(f"{url} is ready")
                return
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code}"
        except OSError as error:  # refused, unreachable, timed out
            last = str(getattr(error, "reason", error))
        if time.monotonic() >= deadline:
            raise click.ClickException(f"{url} did not answer within {timeout:g} s ({last})")
        time.sleep(0.5)


@main.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from services.core.migrate import upgrade

    upgrade()
    click.echo("database is up to date")


@main.command()
@click.option("--demo", is_flag=True, required=True, help="Create the demo world.")
@click.option("--json", "as_json", is_flag=True)
def seed(demo: bool, as_json: bool) -> None:
    """Create (or refresh) the demo area, merchants and API clients; prints fresh secrets."""
    from services.api.seed import seed_demo
    from services.core.db import transaction, utcnow
    from services.core.migrate import upgrade

    upgrade()
    with transaction() as session:
        result = seed_demo(session, utcnow().date())
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"Area {result['area']['code']} ({result['area']['timezone']})")
    for merchant in [*result["merchants"], {"name": "operator", **result["operator"]}]:
        click.echo(f"  {merchant['name']}: {merchant['client_id']} / {merchant['client_secret']}")


@main.group(
    cls=LazyGroup,
    lazy={
        "planner": (
            _bench_planner,
            "Solve VRPTW benchmark instances (VRPLIB .vrp or Solomon .txt).",
        )
    },
)
def bench() -> None:
    """Benchmarks that use the production code paths."""
