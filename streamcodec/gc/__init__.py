"""Global mode (GC): every pixel synthesized from a low-rate latent code (Agustsson et al., ICCV 2019).

    frame ─► E (models/gc.py) ─► symbols ─► symbols.py: context-coded packet ─► parallel.py: on N processes
                                                              │
    frame ◄─ G (models/gc.py) ◄─ symbols ◄────────────────────┘   codec.py: GCEncoder / GCDecoder

`codec` is the mode's encoder and decoder behind `streamcodec.codec`; `symbols` packs and entropy codes
the quantized symbols of one frame; `parallel` runs that entropy coding on worker processes.
"""
