"""Selective mode (SC): keep what matters at full fidelity (people, faces, motion, text), show a background elsewhere.

    frame ─► masks (masks.py: person, face, motion, text, a mask video) ─► 16-px keep blocks
          ─► fidelity layer (kinds.FIDELITY_LAYERS: hevc/av1 in standard.py, learned in learned.py) ─► FIDELITY section
          ─► background layer (kinds.BACKGROUND_LAYERS: plate in plate.py, synth in background.py) ─► PLATE / LATENTS sections
          ─► packet (codec.SelectiveEncoder)  ──►  decoder.SelectiveDecoder composites the two along the blocks

The two interfaces are in layer.py; each layer kind is chosen once, from the options when encoding and from
the stream configuration's `extra` when decoding.
"""
