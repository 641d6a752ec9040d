"""The one exception type for user mistakes.

`OwlError` is raised for bad input (a wrong size, a missing file, an invalid script). Its message is one line
that names the problem and the accepted values; the CLI prints it without a traceback and exits non-zero.
It subclasses ValueError so callers that already catch ValueError keep working.
"""


class OwlError(ValueError):
    """Bad input from the user: the message says what is wrong and what is accepted."""
