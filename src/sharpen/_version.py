"""The package version, on the bottom floor: the runner records it in environment.json
without an arrow up to the front door (``sharpen/__init__.py``, whose ``load_model``
reaches into experiments). pyproject.toml holds the same string."""

__version__ = "0.1.0"
