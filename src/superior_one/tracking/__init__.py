"""GPS tracking: fix validation, geofences, recorded drives."""
