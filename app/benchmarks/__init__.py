"""``snapshop bench``: measured speed, always against a baseline measured in the same run."""
