"""Evaluation of generated videos: VBench's dimensions, suite and totals."""
