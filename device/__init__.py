"""The AstroPlant kit agent: runs on the kit's Raspberry Pi, reads its sensors and publishes the
readings to the backend over MQTT with mutual TLS (AWSIoTPythonSDK).

It imports nothing from Django or the server apps; all it shares with the backend is the MQTT
contract (topics and payloads, see `device.payloads`) and the `kit.toml` file of the kit's
certificate bundle. Python 3.9 or newer (Raspberry Pi OS).
"""

__version__ = "1.0.0"
