"""Other servers measured beside latentforge in the serving benchmark (``make bench-serving``)."""
