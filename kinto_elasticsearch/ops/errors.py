"""The one error a command reports to the operator."""


class CommandError(Exception):
    """A clear message for the operator, and exit status 2."""
