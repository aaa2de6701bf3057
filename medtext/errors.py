"""Errors users can act on. Every message names the file (and line, where there is one) and the fix."""

from __future__ import annotations


class MedtextError(Exception):
    """Base class of every error medtext raises on purpose."""

    #: short machine-readable reason written into ``errors.jsonl`` rows
    reason = "error"


class InputError(MedtextError):
    """An input could not be turned into a document (empty, binary, corrupt, encrypted...)."""

    reason = "input_error"

    def __init__(self, source: str, message: str, reason: str | None = None):
        self.source = source
        self.message = message
        if reason:
            self.reason = reason
        super().__init__(f"{source}: {message}")


class ConfigError(MedtextError):
    """A preset, config file or component override is wrong."""

    reason = "config_error"


class OutputError(MedtextError):
    """The output location cannot be written."""

    reason = "output_error"


class UsageError(MedtextError):
    """The request conflicts with the state on disk (e.g. OUT holds a run and neither
    ``--resume`` nor ``--overwrite`` was given)."""

    reason = "usage_error"


class SchemaError(MedtextError):
    """A record does not match the record schema (or comes from an unknown schema version)."""

    reason = "schema_error"
