"""Frozen integer frequency tables of the side-information coders; uniform until fitted."""

from __future__ import annotations

MASK_INTRA = [[8192, 8192]] * 16
MASK_INTER = [[8192, 8192]] * 30
LABEL_INTRA = [[3277, 3277, 3277, 3277, 3276]] * 10
LABEL_INTER = [[1639] * 4 + [1638] * 6] * 18
