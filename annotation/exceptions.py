"""Domain errors: services raise these; views, commands and the admin turn them into messages."""


class DomainError(Exception):
    """Base for every error a user can fix."""


class TaxonomyError(DomainError):
    pass


class ImageRejected(DomainError):
    pass


class ImportFileError(DomainError):
    """The file cannot be read at all: nothing was imported."""


class RowRejected(DomainError):
    """One row is bad: it is skipped and reported, the others are imported."""


class ReviewError(DomainError):
    """A review action that the assignment's state does not allow."""


class LeaseExpired(ReviewError):
    """The lease ran out and another reviewer may hold the pair now."""


class CampaignError(DomainError):
    """A campaign change that cannot be honoured."""
