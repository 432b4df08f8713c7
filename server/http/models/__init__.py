"""The HTTP API's typed requests and answers (msgspec Structs), one module per route module; they also make the
OpenAPI document (server/http/openapi.py)."""
