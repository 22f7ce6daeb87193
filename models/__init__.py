"""Brevitas models and quantizers equal to numerics formats; filled by the models issue."""
