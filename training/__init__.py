"""Training: one generic accelerate trainer and one specification per model family (see ``specification``).

Importing this package imports neither torch nor diffusers; the trainer and the specifications do.
"""
