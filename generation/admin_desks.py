"""The admin for the organisation, its desks, their members and budgets (staff; desk admins manage their own
desk's members from the studio)."""

from django import forms
from django.contrib import admin
from django.db.models import JSONField

from .models import Desk, Membership, Organisation
from .web.forms import SafeJSONField
from .web.style_forms import HouseStyleField


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    """Budgets of the whole newsroom, across desks, and the pool of evaluation jobs."""

    list_display = ("name", "slug", "tokens_per_day", "tokens_per_month", "evaluation_tokens_per_day")
    prepopulated_fields = {"slug": ("name",)}


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ("user",)
    fields = ("user", "role", "tokens_per_day", "tokens_per_month")


class DeskAdminForm(forms.ModelForm):
    """The house style in the same structured editor as the desk's own style page, saving the same JSON."""

    style = HouseStyleField()

    class Meta:
        model = Desk
        fields = "__all__"


@admin.register(Desk)
class DeskAdmin(admin.ModelAdmin):
    """A desk's members with their roles and own shares, and the desk's budgets (empty: none). Staff's cap on the
    desk (cap_tokens_per_day, cap_tokens_per_month) is set here only: the desk's admins see it on their page, and
    their budgets and members' shares stay within it."""

    list_display = (
        "name",
        "slug",
        "organisation",
        "is_default",
        "tokens_per_day",
        "tokens_per_month",
        "cap_tokens_per_day",
        "cap_tokens_per_month",
    )
    list_filter = ("organisation",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    form = DeskAdminForm
    formfield_overrides = {JSONField: {"form_class": SafeJSONField}}  # the house style: read by the safe parser
    inlines = [MembershipInline]
