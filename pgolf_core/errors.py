"""Exceptions with a clear one-line message; the CLI maps them to exit codes."""


class PgolfError(Exception):
    """A failure the user can act on (bad file, broken plugin). CLI exit code 1."""

    exit_code = 1


class UsageError(PgolfError):
    """Bad command-line or API usage (unknown name, bad option). CLI exit code 2."""

    exit_code = 2


class DataError(PgolfError):
    """A data file is missing, malformed or does not match the tokenizer."""


class ResumeFileError(PgolfError):
    """A resume file is malformed, truncated, of another version, or holds what a resume point may not."""


class PluginError(PgolfError):
    """A plugin failed to import or to register."""


class InvalidConfigurationError(PgolfError):
    """A component is known to break C1-C4 and invalid results were not allowed."""
