"""Plots: learning curves, confusion matrices, image grids (matplotlib, written as PNG)."""
