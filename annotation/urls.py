"""Routes of the annotation app's pages, one namespace per surface (``review:``,
``adjudication:``, ``agreement:``, ``exports:``); URL names are snake_case everywhere. The API's
routes are in ``annotation.api.urls``."""

from django.urls import path

from annotation.views import adjudication, agreement, exports, images, review, tokens

review_urls = (
    [
        path("", review.home, name="home"),
        path("images/<int:image_id>/", images.image, name="image"),
        path("campaigns/<int:campaign_id>/next/", review.campaign_next, name="campaign_next"),
        path("assignments/<int:assignment_id>/", review.assignment_page, name="assignment"),
        path(
            "assignments/<int:assignment_id>/verdict/",
            review.blind_verdict,
            name="blind_verdict",
        ),
        path("assignments/<int:assignment_id>/submit/", review.submit, name="submit"),
        path("assignments/<int:assignment_id>/skip/", review.skip, name="skip"),
        path("assignments/<int:assignment_id>/undo/", review.undo, name="undo"),
        path("assignments/<int:assignment_id>/rewrite/", review.rewrite, name="rewrite"),
        path("assignments/<int:assignment_id>/heartbeat/", review.heartbeat, name="heartbeat"),
        path("assignments/<int:assignment_id>/prefetch/", review.prefetch, name="prefetch"),
        path("settings/", review.reviewer_settings, name="settings"),
        path("settings/tokens/", tokens.tokens, name="tokens"),
        path("settings/tokens/new/", tokens.make_token, name="make_token"),
        path("settings/tokens/<str:token_key>/revoke/", tokens.revoke, name="token_revoke"),
    ],
    "review",
)

adjudication_urls = (
    [
        path("", adjudication.queue, name="queue"),
        path("rewrites/", adjudication.rewrites_page, name="rewrites"),
        path("<int:adjudication_id>/", adjudication.page, name="page"),
        path("<int:adjudication_id>/reopen/", adjudication.reopen, name="reopen"),
        path("<int:adjudication_id>/gold/", adjudication.gold, name="gold"),
    ],
    "adjudication",
)

agreement_urls = (
    [
        path("agreement/", agreement.page, name="page"),
        path("agreement.csv", agreement.csv_download, name="csv"),
    ],
    "agreement",
)

export_urls = (
    [
        path("", exports.page, name="list"),
        path("start/", exports.start, name="start"),
    ],
    "exports",
)
