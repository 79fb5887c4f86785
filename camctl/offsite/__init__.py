"""Footage off the box: rclone as camctl's child, and the copy's own index."""
