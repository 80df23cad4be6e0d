"""guichet: publish a public data provider's APIs to habilitated partners."""

__version__ = "0.1.0"
