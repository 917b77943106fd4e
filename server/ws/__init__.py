"""The WebSocket side of a node: one connection per device, the local hub, broker notices."""
