"""Routes of the agreement dashboard: the page, its CSV and its API endpoint."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path

from annotation import agreement_views, api_agreement

urlpatterns = [
    path("agreement/", agreement_views.agreement, name="agreement"),
    path("agreement.csv", agreement_views.agreement_csv, name="agreement-csv"),
    # The API authenticates itself (session or token) and answers 401/403/404.
    path(
        "api/v1/agreement/",
        login_not_required(api_agreement.AgreementApi.as_view()),
        name="api-agreement",
    ),
]
