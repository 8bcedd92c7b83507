"""Local fakes of third-party services for development and tests.

Production code never imports this package; a test enforces it.
"""
