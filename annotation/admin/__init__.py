"""The Django admin of the annotation app, one module per sub-domain of the models: the dataset
and its taxonomy, review campaigns, exports. Importing the package registers all three."""

from annotation.admin import dataset, export, review

__all__ = ["dataset", "export", "review"]
