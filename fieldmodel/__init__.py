"""The resolved field model: points, profiles, devices and connections, the register types, the
register codec and the quality codes.

A neutral package (numpy and the standard library only) that config loading, the Modbus driver,
the simulators, the sinks and the rules binding all import, so each fact lives in one place.
"""
