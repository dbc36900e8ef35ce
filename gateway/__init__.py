"""hazard-gateway: Modbus polling, vectorized alarm rules, MQTT and InfluxDB for work safety."""

__version__ = "0.1.0"
__all__ = ["__version__"]
