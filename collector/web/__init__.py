"""The web face: one ASGI app with /metrics, /healthz, /readyz, the read API (/api/v1) and the console, behind
access control, every API and console request written to a hash-chained access log. Served by
:mod:`collector.http`."""

from collector.web.app import SECURITY_HEADERS, build_app
from collector.web.context import WebContext
from collector.web.views import Sources

__all__ = ["SECURITY_HEADERS", "Sources", "WebContext", "build_app", "web_context"]


def web_context(sources: Sources, auth_config: object) -> WebContext:
    """The context for ``sources``: access control from the configuration, the access log on the sources' store."""
    from collector.config import AuthConfig
    from collector.store.access_log import AccessLog
    from collector.web.auth import Authenticator

    assert isinstance(auth_config, AuthConfig)
    store = sources.store
    return WebContext(sources, Authenticator(auth_config), AccessLog(store.engine, store.dialect))
