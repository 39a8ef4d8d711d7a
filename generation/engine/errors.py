"""Errors the engine raises; their messages are shown to users as the job's error, so they must read well."""


class EngineError(Exception):
    """A generation request that cannot be served."""


class PromptTooLong(EngineError):
    """The prompt plus the requested output does not fit the model's context window."""


class GenerationTimeout(EngineError):
    """The request ran past its deadline."""

    @classmethod
    def after(cls, seconds: float) -> "GenerationTimeout":
        """The one wording, whichever engine enforced the limit."""
        return cls(f"The job ran past its time limit of {seconds:g} s.")
