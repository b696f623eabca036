"""The simulator: loads the wine training / testing / production splits into the dataset DB."""
