"""The rules of the auth service: pure, no I/O."""
