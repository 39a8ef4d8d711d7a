"""Who may use the curators' endpoints (editor burden, experiments): the people who pick and publish versions."""

from rest_framework.permissions import BasePermission


class CuratesTemplates(BasePermission):
    """Staff, or the admin's permission to change templates: those who pick and publish versions."""

    message = "This is for template curators: staff, or users allowed to change prompt templates."

    def has_permission(self, request, view):
        user = request.user
        return bool(user.is_staff or user.has_perm("generation.change_prompttemplate"))
