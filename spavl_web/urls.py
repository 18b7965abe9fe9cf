from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from annotation.urls import adjudication_urls, agreement_urls, export_urls, review_urls

# /healthz is answered by spavl_web.health.HealthCheckMiddleware, before the host check.

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include("annotation.api.urls")),
    path("judging/", include("judging.urls")),
    path("exports/", include(export_urls)),
    path("adjudication/", include(adjudication_urls)),
    path("", include(agreement_urls)),
    path("", include(review_urls)),
]

handler404 = "spavl_web.errors.not_found"
handler500 = "spavl_web.errors.server_error"
