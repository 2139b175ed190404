"""clipsift: raw videos in, a training set for video generation models out."""

__version__ = "0.1.0"
