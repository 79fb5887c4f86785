"""How camctl writes MP4: fragmented, so a file being written plays up to its last fragment."""

# empty_moov + frag_keyframe: playable from the first fragment; delay_moov: the codec headers (SPS/PPS)
# are taken from the first keyframe when the camera's SDP did not carry them.
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof+delay_moov"
