"""What happened: marks today (a span someone said matters, from NATS, HTTP or the CLI). The
events issue adds its rooms here: the SQLite store, tracking of detections, zones, thumbnails,
and the review API the web routes serve; notifications follow from them."""
