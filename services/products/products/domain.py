"""The rules of the products service: pure, no I/O."""
