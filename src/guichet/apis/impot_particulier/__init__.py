"""API Impôt Particulier: the IR "assiettes" resources by SPI."""

from guichet.apis.impot_particulier.operations import build_operations

__all__ = ["build_operations"]
