"""Simulated printer HTTP APIs (Moonraker, OctoPrint) on loopback ports, for tests, demo and benchmarks.

    from printers.simulator import SimulatedFarm, FAULTS, running_farm

Pure aiohttp + stdlib: nothing here imports Django.
"""

from printers.simulator.farm import SimulatedFarm, running_farm
from printers.simulator.printer import FAULTS, SimPrinter

__all__ = ["FAULTS", "SimPrinter", "SimulatedFarm", "running_farm"]
