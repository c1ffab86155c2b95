"""Old name of marketdata.exchange_server, kept only for realtime/server.py (which this branch may not
edit): delete it once that import reads `from marketdata.exchange_server import ...`."""

from marketdata.exchange_server import ExchangeSimulator, SimulatorConfig

__all__ = ["ExchangeSimulator", "SimulatorConfig"]
