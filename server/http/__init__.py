"""HTTP endpoints: parse, authenticate, call a handler, serialise. No rules here."""
