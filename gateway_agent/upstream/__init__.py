"""Upstream: what goes to the broker (formats, wire, cbor*: pure, no IO) and how it is sent
(forwarder, drain, window, pacing, tls)."""
