"""API R2P: état civil → SPI, and a person's identity record."""

from guichet.apis.r2p.operations import build_operations

__all__ = ["build_operations"]
