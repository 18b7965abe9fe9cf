from django.urls import path

from annotation import views

app_name = "annotation"

urlpatterns = [
    path("", views.home, name="home"),
    path("images/<int:image_id>/", views.image, name="image"),
]
