"""The merchant dashboard and the pages people open: sign-up and sign-in, the
dashboard (one module per page group), and recipients' tracking pages.

Server-rendered (Jinja2), with htmx for the live parts, Chart.js for charts and Leaflet
for maps drawn from coordinates alone; every asset is served by the API itself. Pages
call the same domain services as GraphQL and never query the database themselves.
"""
