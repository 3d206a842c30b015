"""The platform API's routers, by resource."""

from valuecanvas.api_gateway.api import audit, keys, me, organizations, teams, webhooks

ROUTERS = [
    me.router,
    organizations.router,
    teams.router,
    keys.router,
    webhooks.router,
    audit.router,
]
