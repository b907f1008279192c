"""The embedded CPU demo: generated data small enough to train on a laptop."""
