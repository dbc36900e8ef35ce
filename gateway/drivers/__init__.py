"""Field protocols. One sub-package per protocol; Modbus first."""
