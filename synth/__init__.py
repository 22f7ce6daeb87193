"""Synthesis runs, analytic cost model and design-space exploration; filled by the cost issue."""
