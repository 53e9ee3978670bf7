"""Local stand-ins for services evalkit can only call (no network, no account)."""
