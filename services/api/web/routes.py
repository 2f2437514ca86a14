"""Everything the web pages add to the API application."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from services.api.web import auth_pages, client, dashboard
from services.api.web.rendering import mount_static, render

_TITLES = {403: "Not allowed", 404: "Not found", 400: "Something is not right"}


def install(app: FastAPI) -> None:
    app.include_router(auth_pages.router)
    app.include_router(client.router)
    app.include_router(dashboard.router)
    mount_static(app)

    @app.exception_handler(client.Redirect)
    def to_sign_in(request: Request, exc: client.Redirect) -> Response:
        return RedirectResponse(exc.location, status_code=303)

    @app.exception_handler(HTTPException)
    def http_problem(request: Request, exc: HTTPException) -> Response:
        """Pages answer people with a page; everything else keeps FastAPI's JSON."""
        if _is_page(request):
            return render(
                request,
                "error.html",
                status_code=exc.status_code,
                title=_TITLES.get(exc.status_code, "Something went wrong"),
                message=str(exc.detail),
                back=request.headers.get("referer") or "/dashboard",
            )
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )


def _is_page(request: Request) -> bool:
    path = request.url.path
    return (
        path.startswith(("/dashboard", "/signin", "/signup", "/signout", "/invitations"))
        or path.startswith("/verify-email")
        or (path.startswith("/oauth/authorize"))
    )
