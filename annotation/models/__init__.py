"""The annotation app's models, one module per sub-domain; import them from here."""

from annotation.models.agreement import *  # noqa: F403
from annotation.models.dataset import *  # noqa: F403
from annotation.models.export import *  # noqa: F403
from annotation.models.review import *  # noqa: F403
from annotation.models.rewrite import *  # noqa: F403
