"""Selective mode: keep what matters at full fidelity (people, faces, motion, text), synthesize the rest.

This package grows one room per part: `masks` (what to keep, per frame) is the first.
"""
