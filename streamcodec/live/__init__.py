"""Live streaming: capture → Encoder → link → Decoder → a local web page (`streamcodec webcam/send/receive`).

    capture.py   newest frame of a camera, file or URL (drops, never queues)
    rate.py      token bucket holding --max-kbps
    protocol.py  the link's framing (versioned header, bounded size) and authentication (token, HMAC)
    sender.py    capture → encode → link, --record
    receiver.py  link → decode, one live sender (takeover rules), keyframe requests, counters
    stats.py     what the page shows
    web.py       the page's HTTP server (page.html), token-checked, bounded
Only the public codec API (`streamcodec.codec`) is used.
"""
