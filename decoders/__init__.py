"""Payload codecs. Pure: `(f_port, payload) -> Decoded`, normalized names from FORMATS.md."""
