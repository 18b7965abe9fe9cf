"""Routes of the REST API under /api/v1/ (namespace ``api:``). The API authenticates itself
(session or token) and answers 401/403/404, so its views are exempt from
LoginRequiredMiddleware's redirect."""

from collections.abc import Callable

from csp.decorators import csp_update
from django.contrib.auth.decorators import login_not_required, login_required
from django.http import HttpResponseBase
from django.urls import path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)
from rest_framework.views import APIView

from annotation.api import (
    agreement,
    campaigns,
    data,
    exports,
    imports,
    reviews,
    taxonomy,
    tokens,
)
from judging import api as judging

app_name = "api"


def _api(view: type[APIView]) -> Callable[..., HttpResponseBase]:
    """An API view, exempt from LoginRequiredMiddleware: it authenticates itself."""
    return login_not_required(view.as_view())


urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The documentation pages: signed-in users only, like the schema they render.
    path(
        "docs/",
        login_required(SpectacularSwaggerSplitView.as_view(url_name="api:schema")),
        name="docs",
    ),
    path(
        "redoc/",
        # ReDoc styles itself with <style> elements and searches in a blob: worker; scripts
        # still come from this site only.
        login_required(
            csp_update({"style-src": ["'unsafe-inline'"], "worker-src": ["'self'", "blob:"]})(
                SpectacularRedocView.as_view(url_name="api:schema")
            )
        ),
        name="redoc",
    ),
    path("exports/", _api(exports.ExportCreateApi), name="exports"),
    path(
        "exports/<int:job_id>/",
        _api(exports.ExportDetailApi),
        name="export",
    ),
    path(
        "exports/<int:job_id>/files/<path:name>",
        _api(exports.ExportFileApi),
        name="export_file",
    ),
    path("agreement/", _api(agreement.AgreementApi), name="agreement"),
    path("judge-runs/", _api(judging.RunListApi), name="judge_runs"),
    path(
        "judge-runs/<int:run_id>/",
        _api(judging.RunDetailApi),
        name="judge_run",
    ),
    path(
        "judge-runs/<int:run_id>/cancel/",
        _api(judging.RunCancelApi),
        name="judge_run_cancel",
    ),
    path("taxonomy/", _api(taxonomy.TaxonomyApi), name="taxonomy"),
    path("taxonomy/nodes/", _api(taxonomy.NodeCreateApi), name="taxonomy_nodes"),
    path("taxonomy/nodes/<int:node_id>/", _api(taxonomy.NodeEditApi), name="taxonomy_node"),
    path(
        "taxonomy/nodes/<int:node_id>/merge/",
        _api(taxonomy.NodeMergeApi),
        name="taxonomy_node_merge",
    ),
    path(
        "taxonomy/nodes/<int:node_id>/retire/",
        _api(taxonomy.NodeRetireApi),
        name="taxonomy_node_retire",
    ),
    path(
        "taxonomy/nodes/<int:node_id>/restore/",
        _api(taxonomy.NodeRestoreApi),
        name="taxonomy_node_restore",
    ),
    path("imports/", _api(imports.ImportListApi), name="imports"),
    path("imports/<int:batch_id>/", _api(imports.ImportDetailApi), name="import"),
    path(
        "imports/<int:batch_id>/rejections/",
        _api(imports.ImportRejectionsApi),
        name="import_rejections",
    ),
    path("pairs/", _api(data.PairListApi), name="pairs"),
    path("pairs/<int:pair_id>/", _api(data.PairDetailApi), name="pair"),
    path("questions/", _api(data.QuestionListApi), name="questions"),
    path("questions/<int:question_id>/", _api(data.QuestionDetailApi), name="question"),
    path("responses/", _api(data.ResponseListApi), name="responses"),
    path("responses/<int:response_id>/", _api(data.ResponseDetailApi), name="response"),
    path("tokens/", _api(tokens.TokenListApi), name="tokens"),
    path(
        "tokens/<str:token_key>/",
        _api(tokens.TokenDetailApi),
        name="token",
    ),
    path("campaigns/", _api(campaigns.CampaignListApi), name="campaigns"),
    path("campaigns/<int:campaign_id>/", _api(campaigns.CampaignDetailApi), name="campaign"),
    path(
        "campaigns/<int:campaign_id>/reviewers/",
        _api(campaigns.CampaignReviewersApi),
        name="campaign_reviewers",
    ),
    path(
        "campaigns/<int:campaign_id>/reviewers/<str:username>/",
        _api(campaigns.CampaignReviewerApi),
        name="campaign_reviewer",
    ),
    path("reviews/", _api(reviews.ReviewListApi), name="reviews"),
    path("adjudications/", _api(reviews.AdjudicationListApi), name="adjudications"),
]
