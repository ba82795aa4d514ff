"""The rules of the analytics service: pure, no I/O."""
