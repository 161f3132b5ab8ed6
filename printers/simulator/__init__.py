"""Simulated printers on loopback ports, for tests, demo and benchmarks: Moonraker, OctoPrint and
PrusaLink (Buddy firmware, digest auth) HTTP APIs, and Bambu Lab MQTT-over-TLS brokers with
implicit-TLS FTPS (bambu.py has their API).

    from printers.simulator import SimulatedFarm, FAULTS, running_farm

Faults per printer (FAULTS): offline, blackhole (no answer; reset once cleared), slow, http500,
malformed (garbage instead of
doing the request), garbled (does the request, then answers garbage), not_ready (firmware never
connected: Klippy's Moonraker endpoints 404, OctoPrint's serial port closed), disconnect
(firmware link lost mid-print), reset_upload, stall_upload; Bambu printers take BAMBU_FAULTS,
PrusaLink printers PRUSALINK_FAULTS (those plus no_usb, usb_full, slow_usb, stale_nonce, attention).
Every print start and end is kept: `farm.print_log()`, the control API's GET /prints,
Moonraker's /server/history/*.

Pure aiohttp + stdlib + cryptography (Bambu certificates): nothing here imports Django (a Bambu
print reads its 3MF with jobs.metadata, which is pure Python too).
"""

from printers.simulator.farm import SimulatedFarm, running_farm
from printers.simulator.printer import FAULTS, SimPrinter

__all__ = ["FAULTS", "SimPrinter", "SimulatedFarm", "running_farm"]
