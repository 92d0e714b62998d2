"""slmkit.apps (in progress)."""

__all__: list[str] = []
