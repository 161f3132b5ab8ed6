"""Operations endpoints: Prometheus metrics."""

from django.urls import path

from printfarm.ops import views

app_name = "ops"
urlpatterns = [
    path("metrics", views.metrics, name="metrics"),
]
