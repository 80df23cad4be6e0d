"""API FICOBA v2: the national bank-accounts file, with the provider's interface."""

from guichet.apis.ficoba.operations import build_operations

__all__ = ["build_operations"]
