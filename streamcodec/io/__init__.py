"""Container I/O: reading sources, the Matroska writer and reader, preview and audio tracks."""
