"""The ExaBGP adapter: config rendering, API codec, the stdin/stdout bridge and the supervised child."""
