"""The Modbus driver: read planning, the link that owns a connection or serial line, block
decoding, adaptive reads and probing."""
