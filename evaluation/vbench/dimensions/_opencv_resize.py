"""OpenCV's `cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)` on uint8 images, bit for bit, in
numpy, so that the dimensions whose official code resizes with OpenCV (human_action's UMT preprocessing) need no
OpenCV.

What OpenCV 4 does and this reproduces:
- coordinates: `scale = 1 / (dst / src)` in double, `f = float32((d + 0.5) * scale - 0.5)`, `s = floor(f)`,
  `f -= s`; outside the image the nearest edge pixel with weight 1;
- fixed point: weights `rint((1 - f) * 2048)` and `rint(f * 2048)`; the horizontal pass sums exactly in int32;
- the vertical pass is OpenCV's vectorised 8-bit kernel, `(((h0 >> 4) * b0 >> 16) + ((h1 >> 4) * b1 >> 16) + 2) >> 2`
  (its scalar form, `(h0 * b0 + h1 * b1 + 2**21) >> 22`, rounds otherwise in about a third of the pixels); output
  rows above the first or below the last source row (upscaling) keep their unclamped weights on the edge row
  twice, which the two floors of that kernel make differ from the edge row itself;
- an exact 2x downscale in both directions is OpenCV's INTER_AREA fast path, `(a + b + c + d + 2) >> 2`.
"""

import numpy as np

COEF_BITS = 11
COEF_SCALE = 1 << COEF_BITS


def _axis_weights(source: int, target: int, clamp_weights: bool = True):
    """(first index, second index, first weight, second weight) of each output position along one axis; beyond the
    edges both indices are the edge and, with `clamp_weights`, the weights (2048, 0)."""
    scale = 1.0 / (target / source)
    position = ((np.arange(target, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    first = np.floor(position).astype(np.int64)
    fraction = position - first.astype(np.float32)
    if clamp_weights:
        fraction[(first < 0) | (first >= source - 1)] = 0.0
    second = np.clip(first + 1, 0, source - 1)
    first = np.clip(first, 0, source - 1)
    weight0 = np.rint((np.float32(1.0) - fraction) * np.float32(COEF_SCALE)).astype(np.int64)
    weight1 = np.rint(fraction * np.float32(COEF_SCALE)).astype(np.int64)
    return first, second, weight0, weight1


def resize_linear(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)` of a uint8 [H,W] or [H,W,C] image
    (compared with opencv-python 4.11 on 1, 3 and 4 channels and 200 random sizes, up and down: every value equal;
    a [H,W,1] image keeps its channel axis, which OpenCV drops)."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"resize_linear takes a uint8 [H,W] or [H,W,C] image, got {image.dtype} {image.shape}")
    if width < 1 or height < 1:
        raise ValueError(f"resize_linear: width={width} and height={height} must be positive")
    squeeze = image.ndim == 2
    pixels = image[:, :, None] if squeeze else image
    source_height, source_width, channels = pixels.shape
    if (source_width, source_height) == (width, height):
        return image.copy()
    if source_width == 2 * width and source_height == 2 * height:
        blocks = pixels.astype(np.int32).reshape(height, 2, width, 2, channels).sum(axis=(1, 3))
        out = ((blocks + 2) >> 2).astype(np.uint8)
        return out[:, :, 0] if squeeze else out
    x0, x1, a0, a1 = _axis_weights(source_width, width)
    y0, y1, b0, b1 = _axis_weights(source_height, height, clamp_weights=False)
    rows = pixels.astype(np.int64)
    horizontal = rows[:, x0] * a0[None, :, None] + rows[:, x1] * a1[None, :, None]  # [source H, W, C], exact
    top = horizontal[y0].reshape(height, width * channels)
    bottom = horizontal[y1].reshape(height, width * channels)
    beta0, beta1 = b0[:, None], b1[:, None]
    vector = ((((top >> 4) * beta0) >> 16) + (((bottom >> 4) * beta1) >> 16) + 2) >> 2
    out = np.clip(vector, 0, 255).astype(np.uint8).reshape(height, width, channels)
    return out[:, :, 0] if squeeze else out
