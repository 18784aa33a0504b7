"""The LoRaWAN 1.0.x core. Pure: no IO, no clock, no event loop (time is passed in)."""
