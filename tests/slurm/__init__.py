"""A real one-node Slurm cluster on loopback, shaped like UVA Rivanna, for the profile tests."""
