"""VBench dimensions, one module each: `NAME`, `CHECKPOINTS` and `compute(videos, *, checkpoints, device, batch_size)`."""
