"""What every studio page needs to know of the person: whether they review or manage some desk (the nav's
Review and Desks links). Asked lazily: only pages that show the nav run the queries."""

from .. import selectors


def roles(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"reviews_a_desk": False, "manages_a_desk": False}
    return {
        "reviews_a_desk": lambda: bool(selectors.review_desk_ids(user)),
        "manages_a_desk": lambda: selectors.managed_desks(user).exists(),
    }
