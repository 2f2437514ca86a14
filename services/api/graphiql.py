"""GraphiQL served entirely by the API: its scripts come from npm at install time,
never from a CDN at run time (browsers here may have no internet)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

ASSETS = Path(__file__).parent / "static" / "node_modules"
ASSET_PREFIX = "/graphiql/assets"
_CDN = re.compile(r"https://unpkg\.com/((?:@[^/\"]+/)?[^@/\"]+)@[^/\"]+/")


def local_assets(html: str) -> str:
    """Point every CDN script and stylesheet at the copy installed under ASSETS."""
    return _CDN.sub(lambda match: f"{ASSET_PREFIX}/{match.group(1)}/", html)


def mount_assets(app: FastAPI) -> None:
    app.mount(ASSET_PREFIX, StaticFiles(directory=ASSETS, check_dir=False), name="graphiql")
