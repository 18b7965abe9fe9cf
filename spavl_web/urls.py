from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

# /healthz is answered by spavl_web.health.HealthCheckMiddleware, before the host check.

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/v1/", include("annotation.urls_api")),
    path("judging/", include("judging.urls")),
    path("exports/", include("annotation.urls_export")),
    path("", include("annotation.agreement_urls")),
    path("", include("annotation.urls")),
]
