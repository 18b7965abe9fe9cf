"""The staff export page under /exports/."""

from django.urls import path

from annotation import export_views

app_name = "exports"

urlpatterns = [
    path("", export_views.exports, name="list"),
    path("start/", export_views.start, name="start"),
]
