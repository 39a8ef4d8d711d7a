from django.apps import AppConfig


class GenerationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "generation"
    verbose_name = "Generation"

    def ready(self):
        from django.conf import settings

        from . import signals  # noqa: F401  (signals connects the receivers)
        from .infra import registry

        registry.validate(settings.AIGC["MODELS"])
