"""Thin kopf handlers: each one translates kopf's kwargs, awaits one domain call, and
applies the outcome (status patch, Events, "retry later"). Registered in ``main.py``."""
