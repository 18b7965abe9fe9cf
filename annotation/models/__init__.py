"""The annotation app's models, one module per sub-domain; import them from here."""

from annotation.models.dataset import *  # noqa: F403
