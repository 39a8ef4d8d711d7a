"""What every studio page needs to know of the person: whether they review or manage some desk (the nav's
Review and Desks links) and the nav's counts (jobs waiting for their review, unread notices, their own jobs sent
back or approved). Asked lazily and at most once a page: only pages that show the nav run the queries."""

from functools import cache

from .. import selectors


def roles(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"reviews_a_desk": False, "manages_a_desk": False}
    desk_ids = cache(lambda: selectors.review_desk_ids(user))
    counts = cache(lambda: selectors.unread_counts(user))
    return {
        "reviews_a_desk": lambda: bool(desk_ids()),
        "manages_a_desk": lambda: selectors.managed_desks(user).exists(),
        "review_count": cache(lambda: selectors.review_count(user, desk_ids())),
        "unread_notices": lambda: counts()["unread"],
        "my_jobs_notices": lambda: counts()["my_jobs"],
    }
