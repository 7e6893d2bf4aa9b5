"""The unified GraphQL schema: ``Person`` and ``Household`` with fields contributed by each department."""

from hub.schema.build import build_schema, catalog_of, graphql_schema

__all__ = ["build_schema", "catalog_of", "graphql_schema"]
