from django.apps import AppConfig


class SpavlWebConfig(AppConfig):
    """The project's own cross-cutting pieces: API tokens and the deployment checks."""

    name = "spavl_web"
    verbose_name = "Access"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the deployment checks and the token scheme of the OpenAPI schema.
        from spavl_web import checks, openapi  # noqa: F401
