"""The run folder: what a run writes and how a finished one is read."""
