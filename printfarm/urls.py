"""URL wiring."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from printfarm.api import octoprint
from printfarm.api.api import api

urlpatterns = [
    path("", include("printers.urls")),
    path("", include("jobs.urls")),
    path("", include("printfarm.accounts.urls")),
    path("", include("printfarm.ops.urls")),
    path("api/v1/", api.urls),
    # OctoPrint-compatible endpoints for slicers' "send to OctoPrint" (printfarm/api/octoprint.py)
    path("api/version", octoprint.version),
    path("api/server", octoprint.server),
    path("api/settings", octoprint.settings),
    path("api/printerprofiles", octoprint.printer_profiles),
    path("api/files/local", octoprint.files_local),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
