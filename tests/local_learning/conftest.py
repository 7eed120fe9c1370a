"""Tiny Vchitect-2.0 transformers and their flow-matching stages for the local-learning tests."""

import pytest
import torch

from video_diffusion_pack.diffusers_pipelines.vchitect.tiny import tiny_transformer_config
from video_diffusion_pack.models.vchitect_transformer import VchitectXLTransformer3DModel
from video_diffusion_pack.training.specification import DenoiserStages


def mse(prediction, target, weights):
    err = (prediction.float() - target.float()) ** 2
    if weights is not None:
        err = err * weights
    return err.reshape(err.shape[0], -1).mean(dim=1).mean()


class TinyVchitect:
    """A seeded tiny transformer and one fixed flow-matching batch (noise and sigma drawn once)."""

    def __init__(self, num_layers=6, repvideo=False, seed=0, frames=2, size=8):
        torch.manual_seed(seed)
        config = {**tiny_transformer_config(), "num_layers": num_layers, "repvideo_aggregation": repvideo,
                  "repvideo_window_size": 2}
        self.model = VchitectXLTransformer3DModel(**config)
        if repvideo:
            with torch.no_grad():
                self.model.repvideo.learnable_gating.fill_(0.3)
        generator = torch.Generator().manual_seed(seed + 1)
        self.clean = torch.randn(1, frames, 16, size, size, generator=generator)
        self.noise = torch.randn(1, frames, 16, size, size, generator=generator)
        self.text = torch.randn(1, 4, config["joint_attention_dim"], generator=generator)
        self.pooled = torch.randn(1, config["pooled_projection_dim"], generator=generator)
        self.sigma = 0.6

    def inputs(self):
        noisy = (1 - self.sigma) * self.clean + self.sigma * self.noise
        return noisy, self.text, self.pooled, torch.tensor([self.sigma * 1000.0])

    def stages(self) -> DenoiserStages:
        prelude, blocks, head = self.model.forward_stages(*self.inputs())
        return DenoiserStages(
            prelude=prelude, blocks=blocks, head=head, block_modules=list(self.model.transformer_blocks),
            head_modules=[self.model.norm_out, self.model.proj_out], target=self.noise - self.clean,
        )

    def main_loss(self) -> float:
        with torch.no_grad():
            prediction = self.model(*self.inputs(), return_dict=False)[0]
        return mse(prediction, self.noise - self.clean, None).item()

    def group_parameters(self, bounds):
        """The parameters of each group's blocks (prelude and head modules excluded)."""
        return [[p for i in range(start, end) for p in self.model.transformer_blocks[i].parameters()]
                for start, end in bounds]


@pytest.fixture
def tiny_vchitect():
    return TinyVchitect


@pytest.fixture(autouse=True)
def one_thread():
    """The tiny models run fastest on one thread on a shared CPU; the previous setting is restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
