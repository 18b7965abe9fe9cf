from django.urls import path

from annotation import views

app_name = "annotation"

urlpatterns = [
    path("", views.home, name="home"),
    path("images/<int:image_id>/", views.image, name="image"),
    path("campaigns/<int:campaign_id>/next/", views.campaign_next, name="campaign_next"),
    path("assignments/<int:assignment_id>/", views.assignment_page, name="assignment"),
    path("assignments/<int:assignment_id>/verdict/", views.blind_verdict, name="blind_verdict"),
    path("assignments/<int:assignment_id>/submit/", views.submit, name="submit"),
    path("assignments/<int:assignment_id>/skip/", views.skip, name="skip"),
    path("assignments/<int:assignment_id>/undo/", views.undo, name="undo"),
    path("assignments/<int:assignment_id>/heartbeat/", views.heartbeat, name="heartbeat"),
    path("assignments/<int:assignment_id>/prefetch/", views.prefetch, name="prefetch"),
    path("settings/", views.reviewer_settings, name="reviewer_settings"),
    path("adjudication/", views.adjudication_queue, name="adjudication_queue"),
    path("adjudication/<int:adjudication_id>/", views.adjudication_page, name="adjudication"),
    path(
        "adjudication/<int:adjudication_id>/reopen/",
        views.adjudication_reopen,
        name="adjudication_reopen",
    ),
    path(
        "adjudication/<int:adjudication_id>/gold/",
        views.adjudication_gold,
        name="adjudication_gold",
    ),
]
