"""The dashboard's page groups, each a module of its own."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.web import billing, bulk, deliveries, developers, overview, team

router = APIRouter(include_in_schema=False)
for module in (overview, bulk, deliveries, developers, billing, team):
    router.include_router(module.router)
