"""r1data: DeepSeek-R1-style reasoning data and the models trained on it."""

__version__ = "0.1.0"
