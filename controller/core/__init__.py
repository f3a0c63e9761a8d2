"""The pure core: decisions over values.

No I/O, no clock, no logging: an architecture test enforces it.
"""
