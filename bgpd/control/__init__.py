"""The control socket: versioned JSON lines between `bgpd status` (and friends) and the daemon."""
