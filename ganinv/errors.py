"""Exceptions shared by the loaders (kept apart so that every module can raise them without import cycles)."""


class CheckpointError(RuntimeError):
    """A checkpoint could not be read, is of an unsupported kind or does not match the model."""
