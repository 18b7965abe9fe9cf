from django.urls import path

from judging import views

app_name = "judging"

urlpatterns = [
    path("runs/", views.runs, name="runs"),
    path("runs/start/", views.start, name="start"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/cancel/", views.cancel, name="cancel"),
]
