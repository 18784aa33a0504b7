"""`[[outputs]]`: each output drains its own durable lane of the output queue (worker.py) into
one kind of destination (a `Sink`: MQTT, Home Assistant, InfluxDB, webhook, cloud IoT hubs)."""
