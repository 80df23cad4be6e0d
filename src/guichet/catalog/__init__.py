"""The API products as data: resources, resource scopes, data scopes → fields, quotas."""

from guichet.catalog.products import (
    IR_FIELD_SCOPES,
    PRODUCTS,
    YEAR_SCOPES,
    ApiProduct,
    Operation,
    product,
)

__all__ = ["IR_FIELD_SCOPES", "PRODUCTS", "YEAR_SCOPES", "ApiProduct", "Operation", "product"]
