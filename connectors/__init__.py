"""Connectors: one small subpackage per evidence source, each registered as an entry point."""
