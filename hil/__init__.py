"""Hardware-in-the-loop: simulated radios, device fleet, packet forwarder and modem emulation."""
