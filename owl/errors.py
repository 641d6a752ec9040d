"""The exception and warning types for what Owl tells its users.

`OwlError` is raised for bad input (a wrong size, a missing file, an invalid script). Its message is one line
that names the problem and the accepted values; the CLI prints it without a traceback and exits non-zero.
It subclasses ValueError so callers that already catch ValueError keep working.

`OwlWarning` is Owl's own warning (rows skipped, a damaged checkpoint passed over). Owl's commands show these,
one line each, and keep the libraries' deprecation notices off the user's terminal (see `owl.cli`).
"""


class OwlError(ValueError):
    """Bad input from the user: the message says what is wrong and what is accepted."""


class OwlWarning(UserWarning):
    """Something Owl worked around and the user should know about, in one line."""
