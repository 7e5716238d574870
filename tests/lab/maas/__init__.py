"""A MAAS region API simulator, written from MAAS's published OpenAPI description and documentation."""
