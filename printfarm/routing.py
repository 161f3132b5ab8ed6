"""Websocket routes."""

from django.urls import path

from printers.consumers import FarmConsumer

websocket_urlpatterns = [path("ws/farm/", FarmConsumer.as_asgi())]
