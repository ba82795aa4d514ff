"""The rules of the notifications service: pure, no I/O."""
