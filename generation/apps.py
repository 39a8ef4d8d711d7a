from django.apps import AppConfig


class GenerationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "generation"
    verbose_name = "Generation"

    def ready(self):
        from django.conf import settings

        from . import sandbox, signals  # noqa: F401  (signals connects the receivers)
        from .infra import registry

        registry.validate(settings.AIGC["MODELS"])
        sandbox.configure(sandbox_config(settings.AIGC_SANDBOX))


def sandbox_config(values: dict):
    """The sandbox's configuration from the settings (the sandbox itself knows no Django)."""
    from . import sandbox

    limits = sandbox.Limits(
        deadline_s=values["DEADLINE_S"],
        cpu_s=values["CPU_S"],
        memory_mb=values["MEMORY_MB"],
        processes=values["PROCESSES"],
        file_mb=values["FILE_MB"],
        tmpfs_mb=values["TMPFS_MB"],
    )
    return sandbox.Config(bwrap=values["BWRAP"], python=values["PYTHON"], uid=values["UID"], limits=limits)
