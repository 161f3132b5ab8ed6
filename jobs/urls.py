"""The library, the queue, jobs, history and statistics."""

from django.urls import path

from jobs.views import history, library, queue

app_name = "jobs"
urlpatterns = [
    path("files/", library.file_list, name="library"),
    path("files/upload/", library.file_upload, name="upload"),
    path("files/<int:pk>/", library.file_detail, name="file"),
    path("files/<int:pk>/thumbnail/", library.file_thumbnail, name="thumbnail"),
    path("files/<int:pk>/plates/<int:index>/thumbnail/", library.plate_thumbnail, name="plate_thumbnail"),
    path("files/<int:pk>/delete/", library.file_delete, name="file_delete"),
    path("files/<int:pk>/queue/", queue.queue_add, name="queue_add"),
    path("queue/", queue.queue_page, name="queue"),
    path("queue/reorder/", queue.queue_reorder, name="reorder"),
    path("jobs/<int:pk>/", queue.job_detail, name="job"),
    path("jobs/<int:pk>/cancel/", queue.job_cancel_view, name="cancel"),
    path("jobs/<int:pk>/requeue/", queue.job_requeue_view, name="requeue"),
    path("jobs/<int:pk>/move/<str:direction>/", queue.job_move_view, name="move"),
    path("jobs/<int:pk>/print-now/", queue.job_print_now_view, name="print_now"),
    path("jobs/<int:pk>/explain/", queue.job_explain, name="explain"),
    path("history/", history.history, name="history"),
    path("history.csv", history.history_csv, name="history_csv"),
    path("statistics/", history.statistics, name="statistics"),
]
