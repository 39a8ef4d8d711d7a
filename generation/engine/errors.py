"""Errors the engine raises; their messages are shown to users as the job's error, so they must read well."""


class EngineError(Exception):
    """A generation request that cannot be served. What it used before failing, where known, so the job still
    pays for it."""

    prompt_tokens = 0
    completion_tokens = 0


class PromptTooLong(EngineError):
    """The prompt plus the requested output does not fit the model's context window."""


class GenerationTimeout(EngineError):
    """The request ran past its deadline."""

    @classmethod
    def after(cls, seconds: float, prompt_tokens: int = 0, completion_tokens: int = 0) -> "GenerationTimeout":
        """The one wording, whichever engine enforced the limit."""
        exc = cls(f"The job ran past its time limit of {seconds:g} s.")
        exc.prompt_tokens, exc.completion_tokens = prompt_tokens, completion_tokens
        return exc
