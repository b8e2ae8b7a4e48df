"""The vocabulary every part speaks: states, records, and the ports the edges implement."""
