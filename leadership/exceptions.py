"""Errors of worker leadership."""


class StaleLeader(Exception):
    """A write made for a leader whose term is over: another worker leads with a newer token."""
