"""Everything that touches PyAV: sources, decoding, JPEG. Import submodules explicitly."""
