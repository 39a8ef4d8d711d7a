from django.contrib import admin

from .models import ApiKey, Job, JobOutput, PromptTemplate


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "kind", "is_default", "updated_at")
    list_filter = ("kind", "is_default")
    search_fields = ("slug", "name", "description")


class JobOutputInline(admin.TabularInline):
    model = JobOutput
    extra = 0
    readonly_fields = ("index", "text", "finish_reason")
    can_delete = False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "kind", "status", "model_name", "completion_tokens", "created_at")
    list_filter = ("status", "kind")
    search_fields = ("id", "owner__username")
    readonly_fields = [f.name for f in Job._meta.fields]
    inlines = [JobOutputInline]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created with `manage.py create_api_key` (the secret is printed once); here they are listed
    and revoked."""

    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "user__username", "name")
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")

    def has_add_permission(self, request):
        return False
