"""OncoLit's surfaces: settings, CLI, HTTP API, e-mail delivery."""

__version__ = "0.1.0"
