"""The CLI's one user-facing error: `main` prints it as `error: <message>` and exits 1."""


class CliError(Exception):
    """A failure the user can act on (bad input, object exists, API refused)."""
