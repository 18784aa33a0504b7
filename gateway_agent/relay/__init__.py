"""`[relay]`: every frame heard goes to a central ChirpStack in its own gateway protocol (the
ChirpStack MQTT Forwarder's topics and `chirpstack_api.gw` protobufs), durably, and its
downlinks come back to the radios. chirpstack-api is imported only here, only when configured.

- `frames.py`: RadioFrame -> UplinkFrame, DownlinkFrame -> DownlinkTx, acks, stats (no IO);
- `link.py`: the MQTT connections (data + commands, one presence connection per gateway);
- `service.py`: `Relay`, what the daemon wires: the encoder, the lane's worker and sink, stats,
  downlinks and their TX_ACK outcome.
"""
