"""ASGI entry point: HTTP through Django, websockets through channels."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "printfarm.settings")
django.setup(set_prefix=False)

from printfarm.asgi_http import FarmASGIHandler  # noqa: E402

django_asgi_app = FarmASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from printfarm.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
