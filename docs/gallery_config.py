"""Settings of the gallery that the Sphinx configuration names by their import path (a config
value that is a function could not be cached)."""


def no_arguments(script_index: int, script_name: str) -> list[str]:
    """The examples parse ``sys.argv``: run each with its defaults."""
    return []
