"""The resolved field model: register types, the register codec and quality codes.

A neutral package (numpy and the standard library only) that config loading, the Modbus driver,
the simulators, the sinks and the rules binding all import, so each fact lives in one place.
"""
