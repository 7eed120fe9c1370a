"""The shapes world: a procedural video world with known ground truth, its dataset writer and its quality bed."""
