from django.urls import reverse
from rest_framework import serializers

from ..models import Job, Kind


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, instead of silently dropping them (a typo would otherwise be lost)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class JobCreateSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=Kind.choices, required=False, help_text="Picks that kind's default template.")
    template = serializers.SlugField(required=False, help_text="A template slug, instead of a kind.")
    inputs = serializers.JSONField(required=False, default=dict, help_text="Values for the template's variables.")
    params = serializers.JSONField(
        required=False, default=dict, help_text="max_new_tokens, temperature, top_p, n, seed; defaults from the template."
    )


class JobOutputSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    text = serializers.CharField()


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField(allow_null=True)
    completion_tokens = serializers.IntegerField(allow_null=True)


class JobSerializer(serializers.ModelSerializer):
    template = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    template_version = serializers.SerializerMethodField()
    outputs = JobOutputSerializer(many=True, read_only=True)
    usage = serializers.SerializerMethodField()
    model = serializers.CharField(source="model_name", read_only=True)
    html_url = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id", "status", "kind", "template", "template_version", "inputs", "params", "outputs", "usage",
            "error", "model", "attempts", "created_at", "started_at", "finished_at", "html_url",
        ]  # fmt: skip

    def get_template_version(self, job) -> int | None:
        return None  # templates are not versioned yet

    def get_usage(self, job) -> dict:
        return {"prompt_tokens": job.prompt_tokens, "completion_tokens": job.completion_tokens}

    def get_html_url(self, job) -> str:
        path = reverse("job-detail", args=[job.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path
