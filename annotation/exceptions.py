"""Domain errors: services raise these; views, commands and the admin turn them into messages."""


class DomainError(Exception):
    """Base for every error a user can fix."""


class TaxonomyError(DomainError):
    pass


class TaxonomyConflict(TaxonomyError):
    """The edit clashes with the taxonomy as it stands (a live node already has the key)."""


class ImageRejected(DomainError):
    pass


class ImportFileError(DomainError):
    """The file cannot be read at all: nothing was imported."""


class RowRejected(DomainError):
    """One row is bad: it is skipped and reported, the others are imported."""


class ReviewError(DomainError):
    """A review action that the assignment's state does not allow."""


class ReviewConflict(ReviewError):
    """The request contradicts what is already stored (HTTP 409)."""


class LeaseExpired(ReviewError):
    """The lease ran out and another reviewer may hold the pair now."""


class CampaignError(DomainError):
    """A campaign change that cannot be honoured."""
