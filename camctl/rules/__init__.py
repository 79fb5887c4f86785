"""Pure rules the config validates against and the media code follows: encoder and preset names,
grid layouts, output targets, MP4 flags. No I/O; they import only the foundation, so the config
sits above them and nothing here reaches back up."""
