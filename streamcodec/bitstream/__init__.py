"""Frame packets and the stream configuration (Matroska CodecPrivate).

Frame packet, format version 2 (what this module writes), self-delimiting, integers big-endian,
`varint` = unsigned LEB128:

    size    field
    1       head: format version in the high nibble (2), frame type (FrameType) in the low one
    varint  total packet length in bytes, head and checksum included
    varint  inter frames only: reference distance in frames (>= 1)
    1       inter frames only: the reference check (see "Reference check" below)
    ...     sections, up to the checksum: tag (1 byte), length (varint), data
    4       CRC-32 of every byte before it

Every later format version keeps the head byte, the length after it and the CRC-32 at the end, so a
decoder checks any packet's integrity before it reads the version. An intra frame's packet costs 6
bytes besides its sections, an inter frame's 8. Format version 1 (every stream written before it; still
read, and a stream's configuration says which it holds) spent 13–16 bytes: a magic b"SCFR", version, frame type,
reference distance and section count bytes, the length, the sections and the CRC-32, with the
reference check as a 3-byte section 0x81 of inter frames. At 30 fps that is 3.8 kbps against
1.9 kbps, 4.9 % of the talking-head clip's stream at 80 kbps (`streamcodec info`).

Tags below 0x80 are critical: a decoder that does not know one must refuse the frame. Tags from
0x80 up may be skipped. This is how the selective mode's extra sections (kept-region mask,
semantic label map, latents inside the mask) and later inter-frame tools can be added without
breaking older streams: they are new tags or new frame types.

Reference check (format 2: the byte after an inter frame's reference distance; format 1: section
0x81, optional, written since 0.2.0): an inter frame carries one byte,
the low byte of the CRC-32 of its reference's symbols (`reference_hash`). The decoder compares it
with the symbols it holds and refuses the frame (CorruptStreamError) when they differ, e.g. after
a block was lost at the container level; it then conceals until the next intra frame. It costs
one byte per inter frame in format 2 (3 in format 1: tag, length, hash). Why a hash and not a frame counter: the hash needs no
counter in intra frames (a counter must be in every frame to be checked), it names what the
decoding depends on (the reference symbols), so it also catches reordered or spliced streams and
has no blind spot when exactly 256 frames (or whole GOPs) are lost; and when a different frame
happens to have identical symbols the decode is correct anyway. One byte leaves a 1/256 chance
that a wrong reference slips through; the decoder's exactness check (the payload must re-encode
to itself) then still catches most wrong-reference decodes (406 of 406 tried at 301x203, 22 of
24 at 64x48, where payloads are only a few words). The section is
skippable, so decoders of 0.1.0 read new streams, and streams without it (0.1.0) still decode,
checked as before (reference distance 1 and a held reference). Decoded packets of either format
hand the check over as `Frame.sections[REFERENCE]`, so the decoders see one shape.

Reference check per mode: in GC streams (mode "gc") 0x81 holds the reference symbols' hash as
above. In selective streams (mode "sc") it holds the low byte of the previous packet's CRC-32
trailer (its last byte): what a selective inter frame depends on is the whole previous packet
(mask, fidelity access unit), and its CRC is already there to name it. It is written on every
selective inter frame; a decoder refuses a selective inter frame without it or with the wrong one.

Selective mode (mode "sc"; frame types SELECTIVE_INTRA 2 / SELECTIVE_INTER 3):
    0x02 MASK      the 16-px block keep mask, maskcode payload (intra at keyframes, against the
                   previous frame's mask between); absent = empty payload (all dropped at a
                   keyframe, unchanged between)
    0x04 FIDELITY  one HEVC (Annex B) or AV1 (low-overhead OBU) access unit of the frame; IDR with
                   parameter sets at keyframes. AV1 units leave out the leading temporal delimiter
                   OBU (as Matroska's AV1 mapping does); streams written before keep it, and decode alike
                   With fidelity "learned" (new streams only): the LATENTS layout
                   (channel count u8 + range-coded GC symbols, intra tables at keyframes, inter
                   against the previous frame's symbols between), zero (center) outside the kept
                   cells; `extra` fg_crf then holds the GC quality level, and the PLATE is HEVC
    0x05 PLATE     keyframes with background "plate": the background picture as one intra access
                   unit of the same codec; the same bytes again while the background is unchanged
    0x06 PLATE_UPDATE  keyframes with background "plate", between full plates (`--plate-refresh`):
                   2 bytes, the low 16 bits big-endian of the CRC-32 of the last plate access unit
                   (PLATE's, or a non-empty PLATE_UPDATE's) that this one follows, then one inter
                   access unit of the plate's stream coded against it; no access unit: the background
                   is unchanged. A decoder that does not hold that access unit's picture (it started
                   after it, or lost it) cannot use the update: it shows the last background it has,
                   or none, until the next PLATE. Written since 0.3 (older decoders refuse it as an
                   unknown critical section)
    0x01 LATENTS   keyframes with background "synth": GC latents (as in a GC intra frame, at the
                   lowest quality) of the background
    0x03 LABELS    keyframes with background "synth": the labeler's map of the same background
                   (labelcode payload, intra; may be empty: an all-0 map); the decoder paints the
                   background with the SC generator named in `extra` from LATENTS and LABELS.
                   Synth streams written before it (no LABELS, no "synth_model" in `extra`) are
                   painted by the GC model's generator from LATENTS alone
    0x81 REFERENCE inter frames (a section in format 1, in the packet's head in format 2): see above
Every selective keyframe's kept region is self-contained, and so is its background where it carries a
PLATE (every keyframe with `--plate-refresh 0`, as live streams do). The configuration's `extra` holds the selective
settings (see SC_EXTRA; the synth generator's in SC_SYNTH_EXTRA), checked by `validate`.

Progressive mode (mode "progressive"; every frame INTRA, a keyframe, holding only these sections):
    0x20 + i  ITERATION i   iteration i's binary codes (bits × h × w), range-coded alone
                   (streamcodec/progressive/bits.py); sections 0x20, 0x21, … exactly in this order, at least
                   one, at most MAX_ITERATIONS (32). Section i is decoded with iterations < i, never a later one,
                   so the first k sections are a whole frame at k iterations: `cut_packet` re-packs them, with
                   the packet's new length and CRC-32, decoding nothing (`streamcodec thin`). The configuration's
                   `quality` is the iterations a packet holds, `channels` the code bits per cell and iteration,
                   `extra` {"iterations": the model's, "tables": its entropy tables' identifier or "adaptive"}.

Stream configuration: b"SCST", a version byte, then UTF-8 JSON (`StreamConfig`). `unpack` checks
every field's type and range (`StreamConfig.validate`) before anything is allocated from it.
"""

from __future__ import annotations

from .config import (
    KNOWN_MODES,
    MAX_GOP,
    MAX_KEEP,
    MAX_NAME,
    MAX_PIXELS,
    MAX_SIDE,
    SC_EXTRA,
    SC_OPTIONAL_EXTRA,
    SC_SYNTH_EXTRA,
    StreamConfig,
)
from .packet import (
    CONFIG_MAGIC,
    FIDELITY,
    FORMAT_VERSION,
    FORMATS,
    FRAME_MAGIC,
    ITERATION,
    ITERATIONS,
    KNOWN_SECTIONS,
    LABELS,
    LATENTS,
    MASK,
    MAX_ITERATIONS,
    MIN_PACKET,
    OPTIONAL_TAG,
    PLATE,
    PLATE_CHECK,
    PLATE_UPDATE,
    REFERENCE,
    Frame,
    FrameType,
    cut_packet,
    iteration_sections,
    pack_frame,
    pack_latents,
    packet_length,
    plate_check,
    reference_hash,
    section_size,
    unpack_frame,
    unpack_latents,
    unpack_reference,
)

__all__ = [
    "CONFIG_MAGIC",
    "FIDELITY",
    "FORMATS",
    "FORMAT_VERSION",
    "FRAME_MAGIC",
    "ITERATION",
    "ITERATIONS",
    "KNOWN_MODES",
    "KNOWN_SECTIONS",
    "LABELS",
    "LATENTS",
    "MASK",
    "MAX_GOP",
    "MAX_ITERATIONS",
    "MAX_KEEP",
    "MAX_NAME",
    "MAX_PIXELS",
    "MAX_SIDE",
    "MIN_PACKET",
    "OPTIONAL_TAG",
    "PLATE",
    "PLATE_CHECK",
    "PLATE_UPDATE",
    "REFERENCE",
    "SC_EXTRA",
    "SC_OPTIONAL_EXTRA",
    "SC_SYNTH_EXTRA",
    "Frame",
    "FrameType",
    "StreamConfig",
    "cut_packet",
    "iteration_sections",
    "pack_frame",
    "pack_latents",
    "packet_length",
    "plate_check",
    "reference_hash",
    "section_size",
    "unpack_frame",
    "unpack_latents",
    "unpack_reference",
]
