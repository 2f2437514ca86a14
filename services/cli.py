"""The `lastmile` command: each service contributes its own commands."""

from __future__ import annotations

import json

import click

from services.billing.cli import billing, consolidation_command
from services.planner.bench import bench_planner
from services.planner.cli import plan
from services.planner.standalone import PlannerCostModel


@click.group()
def main() -> None:
    """Lastmile: last-mile delivery as a cloud service."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="API processes.")
def serve(host: str, port: int, workers: int) -> None:
    """Run the API (GraphQL, OAuth, dashboard)."""
    import uvicorn

    from services.core.settings import get_settings

    uvicorn.run(
        "services.api.app:create_server_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        ws_max_size=get_settings().max_request_bytes,
    )


@main.command()
@click.option("--queues", default="planner,billing,webhooks", show_default=True)
@click.option("--concurrency", default=None, type=int, help="Worker processes (default: cores).")
def worker(queues: str, concurrency: int | None) -> None:
    """Run a Celery worker for the planner, billing and webhooks queues."""
    from services.core.celery_app import celery_app

    argv = ["worker", "--loglevel=INFO", f"--queues={queues}"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    celery_app.worker_main(argv)


@main.command()
def scheduler() -> None:
    """Run Celery beat: the planning waves and the other periodic jobs (run exactly one)."""
    from services.core.celery_app import celery_app
    from services.core.settings import get_settings

    schedule = get_settings().var_dir / "celerybeat-schedule"
    celery_app.start(["beat", "--loglevel=INFO", f"--schedule={schedule}"])


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


@main.group()
def bench() -> None:
    """Benchmarks that use the production code paths."""


bench.add_command(bench_planner)
# Billing may not import the planner: the assembler hands it the planner's cost model.
billing.add_command(consolidation_command(PlannerCostModel))
main.add_command(billing)
main.add_command(plan)
