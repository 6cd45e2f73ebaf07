"""Definitions: pydantic models, libvirt rules and XML in and out; no host, database or HTTP."""
