"""The rules of the orders service: pure, no I/O."""
