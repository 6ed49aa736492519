"""Exceptions raised by the library; the CLI turns them into clean messages at the edge."""


class Align2Error(Exception):
    """Base class: a problem the user can fix. The message says what, the value, and how."""


class SourceError(Align2Error):
    """An input source cannot be read at all (as opposed to a bad row, which is quarantined)."""
