"""Operations endpoints: Prometheus metrics."""

app_name = "ops"
urlpatterns: list = []
