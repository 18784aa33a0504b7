"""gateway-agent: a LoRaWAN gateway edge agent for smart-places deployments."""

__version__ = "0.1.0"
