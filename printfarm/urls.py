"""URL wiring."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from printfarm.api import octoprint
from printfarm.api.api import api

# The admin speaks of the farm, not of "Django administration".
admin.site.site_header = "printfarm administration"
admin.site.site_title = "printfarm admin"
admin.site.index_title = "Farm data"

handler500 = "printfarm.errors.server_error"

urlpatterns = [
    path("", include("printers.urls")),
    path("", include("jobs.urls")),
    path("", include("printfarm.accounts.urls")),
    path("", include("printfarm.ops.urls")),
    path("", include("notifications.urls")),
    path("api/v1/", api.urls),
    # OctoPrint-compatible endpoints for slicers' "send to OctoPrint" (printfarm/api/octoprint.py)
    path("api/version", octoprint.version),
    path("api/server", octoprint.server),
    path("api/settings", octoprint.settings),
    path("api/printerprofiles", octoprint.printer_profiles),
    path("api/files/local", octoprint.files_local),
    path("api/files/local/<path:path>", octoprint.file_resource, name="octoprint-file"),
    path("api/printer", octoprint.printer),
    path("api/job", octoprint.job),
    path("api/connection", octoprint.connection),
    path("api/login", octoprint.login),
    # Any other OctoPrint path (not our own /api/v1/), and plugins: a JSON 404, not an HTML page.
    re_path(r"^api/(?!v1(?:/|$))(?P<rest>.*)$", octoprint.absent),
    path("plugin/<path:rest>", octoprint.absent),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
