"""Re-encoding: the 2x2 grid, transcoded camera streams, and the bitrate controller behind both."""
