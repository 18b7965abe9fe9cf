from django.urls import path

from judging import views

app_name = "judging"

urlpatterns = [
    path("runs/", views.runs, name="runs"),
    path("runs/start/", views.start, name="start"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/cancel/", views.cancel, name="cancel"),
    path("generation/", views.generation_runs, name="generation"),
    path("generation/start/", views.start_generation, name="generation_start"),
    path("generation/<int:run_id>/", views.generation_run_detail, name="generation_run"),
    path("generation/<int:run_id>/cancel/", views.cancel_generation, name="generation_cancel"),
]
