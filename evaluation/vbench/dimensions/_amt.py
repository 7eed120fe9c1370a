"""AMT-S (All-pairs Multi-field Transforms, small) frame interpolation under the state-dict names of `amt-s.pth`
(`{'state_dict': ...}`, the checkpoint VBench's motion_smoothness loads), for the settings VBench uses
(corr_radius 3, corr_lvls 4, num_flows 3, scale_factor 1, evaluation output only).

Written for the pack from the published architecture: a RAFT-style small feature encoder with a bidirectional
all-pairs correlation pyramid, an IFRNet-style image pyramid and coarse-to-fine decoders with correlation-driven
residual updates, and a final multi-flow warping combined by a small conv block. Differences from the released
code: the time step is broadcast to the batch, so several frame pairs run in one call.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


def resize(x, scale_factor):
    return F.interpolate(x, scale_factor=scale_factor, mode="bilinear", align_corners=False)


def warp(image, flow):
    """Backward warp of `image` by `flow` (pixels), bilinear, border padding, align_corners=True."""
    b, _, h, w = flow.shape
    xs = torch.linspace(-1.0, 1.0, w).view(1, 1, 1, w).expand(b, -1, h, -1)
    ys = torch.linspace(-1.0, 1.0, h).view(1, 1, h, 1).expand(b, -1, -1, w)
    grid = torch.cat([xs, ys], 1).to(image)
    scaled = torch.cat([flow[:, 0:1] / ((w - 1.0) / 2.0), flow[:, 1:2] / ((h - 1.0) / 2.0)], 1)
    return F.grid_sample(image, (grid + scaled).permute(0, 2, 3, 1), mode="bilinear", padding_mode="border",
                         align_corners=True)


def convrelu(in_channels, out_channels, kernel_size=3, stride=1, padding=1):
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding), nn.PReLU(out_channels))


class ResBlock(nn.Module):
    """Residual block whose last `side_channels` channels get an extra conv twice on the way."""

    def __init__(self, in_channels, side_channels):
        super().__init__()
        self.side_channels = side_channels
        self.conv1 = convrelu(in_channels, in_channels)
        self.conv2 = convrelu(side_channels, side_channels)
        self.conv3 = convrelu(in_channels, in_channels)
        self.conv4 = convrelu(side_channels, side_channels)
        self.conv5 = nn.Conv2d(in_channels, in_channels, 3, 1, 1)
        self.prelu = nn.PReLU(in_channels)

    def _side(self, x, conv):
        s = self.side_channels
        return torch.cat([x[:, :-s], conv(x[:, -s:])], 1)

    def forward(self, x):
        out = self.conv3(self._side(self.conv1(x), self.conv2))
        out = self.conv5(self._side(out, self.conv4))
        return self.prelu(x + out)


class Encoder(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.levels = len(channels)
        previous = 3
        for index, ch in enumerate(channels, 1):
            self.register_module(f"pyramid{index}", nn.Sequential(convrelu(previous, ch, 3, 2, 1), convrelu(ch, ch)))
            previous = ch

    def forward(self, x):
        features = []
        for index in range(1, self.levels + 1):
            x = getattr(self, f"pyramid{index}")(x)
            features.append(x)
        return features


class InitDecoder(nn.Module):
    def __init__(self, in_ch, out_ch, skip_ch):
        super().__init__()
        self.convblock = nn.Sequential(
            convrelu(in_ch * 2 + 1, in_ch * 2), ResBlock(in_ch * 2, skip_ch), nn.ConvTranspose2d(in_ch * 2, out_ch + 4, 4, 2, 1)
        )

    def forward(self, f0, f1, embt):
        embt = embt.expand(f0.shape[0], 1, *f0.shape[2:])
        out = self.convblock(torch.cat([f0, f1, embt], 1))
        flow0, flow1 = torch.chunk(out[:, :4], 2, 1)
        return flow0, flow1, out[:, 4:]


class IntermediateDecoder(nn.Module):
    def __init__(self, in_ch, out_ch, skip_ch):
        super().__init__()
        self.convblock = nn.Sequential(
            convrelu(in_ch * 3 + 4, in_ch * 3), ResBlock(in_ch * 3, skip_ch), nn.ConvTranspose2d(in_ch * 3, out_ch + 4, 4, 2, 1)
        )

    def forward(self, ft, f0, f1, flow0_in, flow1_in):
        out = self.convblock(torch.cat([ft, warp(f0, flow0_in), warp(f1, flow1_in), flow0_in, flow1_in], 1))
        flow0, flow1 = torch.chunk(out[:, :4], 2, 1)
        flow0 = flow0 + 2.0 * resize(flow0_in, 2.0)
        flow1 = flow1 + 2.0 * resize(flow1_in, 2.0)
        return flow0, flow1, out[:, 4:]


class MultiFlowDecoder(nn.Module):
    def __init__(self, in_ch, skip_ch, num_flows):
        super().__init__()
        self.num_flows = num_flows
        self.convblock = nn.Sequential(
            convrelu(in_ch * 3 + 4, in_ch * 3), ResBlock(in_ch * 3, skip_ch),
            nn.ConvTranspose2d(in_ch * 3, 8 * num_flows, 4, 2, 1),
        )

    def forward(self, ft, f0, f1, flow0, flow1):
        n = self.num_flows
        out = self.convblock(torch.cat([ft, warp(f0, flow0), warp(f1, flow1), flow0, flow1], 1))
        delta0, delta1, mask, residual = torch.split(out, [2 * n, 2 * n, n, 3 * n], 1)
        flow0 = delta0 + 2.0 * resize(flow0, 2.0).repeat(1, n, 1, 1)
        flow1 = delta1 + 2.0 * resize(flow1, 2.0).repeat(1, n, 1, 1)
        return flow0, flow1, torch.sigmoid(mask), residual


class SmallUpdateBlock(nn.Module):
    def __init__(self, cdim, hidden_dim, flow_dim, corr_dim, fc_dim, corr_levels, radius, scale_factor=None):
        super().__init__()
        corr_planes = corr_levels * (2 * radius + 1) ** 2
        self.scale_factor = scale_factor
        self.convc1 = nn.Conv2d(2 * corr_planes, corr_dim, 1)
        self.convf1 = nn.Conv2d(4, flow_dim * 2, 7, padding=3)
        self.convf2 = nn.Conv2d(flow_dim * 2, flow_dim, 3, padding=1)
        self.conv = nn.Conv2d(corr_dim + flow_dim, fc_dim, 3, padding=1)

        def head(out_dim):
            return nn.Sequential(nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1), nn.LeakyReLU(0.1),
                                 nn.Conv2d(hidden_dim, out_dim, 3, padding=1))

        self.gru = nn.Sequential(nn.Conv2d(fc_dim + 4 + cdim, hidden_dim, 3, padding=1), nn.LeakyReLU(0.1),
                                 nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1))
        self.feat_head = head(cdim)
        self.flow_head = head(4)

    def forward(self, net, flow, corr):
        if self.scale_factor is not None:
            net = resize(net, 1 / self.scale_factor)
        corr = F.leaky_relu(self.convc1(corr), 0.1)
        motion = F.leaky_relu(self.convf2(F.leaky_relu(self.convf1(flow), 0.1)), 0.1)
        inp = F.leaky_relu(self.conv(torch.cat([corr, motion], 1)), 0.1)
        out = self.gru(torch.cat([inp, flow, net], 1))
        delta_net, delta_flow = self.feat_head(out), self.flow_head(out)
        if self.scale_factor is not None:
            delta_net = resize(delta_net, self.scale_factor)
            delta_flow = self.scale_factor * resize(delta_flow, self.scale_factor)
        return delta_net, delta_flow


class BottleneckBlock(nn.Module):
    """RAFT's bottleneck with parameter-free instance norms (the AMT-S feature encoder's setting)."""

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes // 4, 1)
        self.conv2 = nn.Conv2d(planes // 4, planes // 4, 3, padding=1, stride=stride)
        self.conv3 = nn.Conv2d(planes // 4, planes, 1)
        self.downsample = None if stride == 1 else nn.Sequential(
            nn.Conv2d(in_planes, planes, 1, stride=stride), nn.InstanceNorm2d(planes)
        )

    def forward(self, x):
        y = F.relu(F.instance_norm(self.conv1(x)))
        y = F.relu(F.instance_norm(self.conv2(y)))
        y = F.relu(F.instance_norm(self.conv3(y)))
        return F.relu((x if self.downsample is None else self.downsample(x)) + y)


class SmallEncoder(nn.Module):
    def __init__(self, output_dim=84):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 7, stride=2, padding=3)
        self.layer1 = nn.Sequential(BottleneckBlock(32, 32), BottleneckBlock(32, 32))
        self.layer2 = nn.Sequential(BottleneckBlock(32, 64, 2), BottleneckBlock(64, 64))
        self.layer3 = nn.Sequential(BottleneckBlock(64, 96, 2), BottleneckBlock(96, 96))
        self.conv2 = nn.Conv2d(96, output_dim, 1)

    def forward(self, images):
        x = F.relu(F.instance_norm(self.conv1(torch.cat(images, 0))))
        x = self.conv2(self.layer3(self.layer2(self.layer1(x))))
        return torch.split(x, [images[0].shape[0]] * len(images), 0)


def coords_grid(batch, height, width, device):
    ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    return torch.stack([xs, ys], 0).float()[None].repeat(batch, 1, 1, 1)


def bilinear_lookup(volume, coords):
    """Values of `volume` [N,C,H,W] at pixel `coords` [N,h,w,2] (x, y), zeros outside, align_corners=True."""
    h, w = volume.shape[-2:]
    x, y = coords.split([1, 1], dim=-1)
    return F.grid_sample(volume, torch.cat([2 * x / (w - 1) - 1, 2 * y / (h - 1) - 1], -1), align_corners=True)


class BidirCorrBlock:
    """All-pairs correlation of two feature maps, both ways, as pyramids; looked up in a (2r+1)^2 window."""

    def __init__(self, fmap0, fmap1, num_levels, radius):
        self.num_levels, self.radius = num_levels, radius
        b, dim, h, w = fmap0.shape
        corr = torch.matmul(fmap0.view(b, dim, h * w).transpose(1, 2), fmap1.view(b, dim, h * w))
        corr = corr.view(b, h, w, 1, h, w) / torch.sqrt(torch.tensor(dim).float())
        pyramid = [corr.reshape(b * h * w, 1, h, w)]
        pyramid_t = [corr.permute(0, 4, 5, 3, 1, 2).reshape(b * h * w, 1, h, w)]
        for _ in range(num_levels - 1):
            pyramid.append(F.avg_pool2d(pyramid[-1], 2, stride=2))
            pyramid_t.append(F.avg_pool2d(pyramid_t[-1], 2, stride=2))
        self.pyramid, self.pyramid_t = pyramid, pyramid_t

    def __call__(self, coords0, coords1):
        r = self.radius
        coords0, coords1 = coords0.permute(0, 2, 3, 1), coords1.permute(0, 2, 3, 1)
        b, h, w, _ = coords0.shape
        line = torch.linspace(-r, r, 2 * r + 1, device=coords0.device)
        # the window's first axis offsets x and its second y, as in the released model's lookup order
        window = torch.stack(torch.meshgrid(line, line, indexing="ij"), -1).view(1, 2 * r + 1, 2 * r + 1, 2)
        outs, outs_t = [], []
        for level in range(self.num_levels):
            c0 = coords0.reshape(b * h * w, 1, 1, 2) / 2**level + window
            c1 = coords1.reshape(b * h * w, 1, 1, 2) / 2**level + window
            outs.append(bilinear_lookup(self.pyramid[level], c0).view(b, h, w, -1))
            outs_t.append(bilinear_lookup(self.pyramid_t[level], c1).view(b, h, w, -1))
        return (torch.cat(outs, -1).permute(0, 3, 1, 2).contiguous().float(),
                torch.cat(outs_t, -1).permute(0, 3, 1, 2).contiguous().float())


class AMTS(nn.Module):
    """AMT-S: the frame at time `embt` between `img0` and `img1` ([B,3,H,W] in 0..1, H and W multiples of 16)."""

    def __init__(self, corr_radius=3, corr_lvls=4, num_flows=3, channels=(20, 32, 44, 56), skip_channels=20):
        super().__init__()
        self.radius, self.corr_levels, self.num_flows = corr_radius, corr_lvls, num_flows
        self.feat_encoder = SmallEncoder(84)
        self.encoder = Encoder(channels)
        self.decoder4 = InitDecoder(channels[3], channels[2], skip_channels)
        self.decoder3 = IntermediateDecoder(channels[2], channels[1], skip_channels)
        self.decoder2 = IntermediateDecoder(channels[1], channels[0], skip_channels)
        self.decoder1 = MultiFlowDecoder(channels[0], skip_channels, num_flows)
        self.update4 = self._update_block(44)
        self.update3 = self._update_block(32, 2)
        self.update2 = self._update_block(20, 4)
        self.comb_block = nn.Sequential(
            nn.Conv2d(3 * num_flows, 6 * num_flows, 3, 1, 1), nn.PReLU(6 * num_flows),
            nn.Conv2d(6 * num_flows, 3, 3, 1, 1),
        )

    def _update_block(self, cdim, scale_factor=None):
        return SmallUpdateBlock(cdim, 76, 20, 64, 68, self.corr_levels, self.radius, scale_factor)

    @staticmethod
    def _lookup(corr_fn, coord, flow0, flow1, embt, downsample):
        if downsample != 1:
            flow0 = resize(flow0, 1 / downsample) / downsample
            flow1 = resize(flow1, 1 / downsample) / downsample
        corr0, corr1 = corr_fn(coord + flow1 * (1.0 / embt), coord + flow0 * (1.0 / (1.0 - embt)))
        return torch.cat([corr0, corr1], 1), torch.cat([flow0, flow1], 1)

    def _refine(self, update, corr_fn, coord, flow0, flow1, ft, embt, downsample):
        corr, flow = self._lookup(corr_fn, coord, flow0, flow1, embt, downsample)
        delta_ft, delta_flow = update(ft, flow, corr)
        delta0, delta1 = torch.chunk(delta_flow, 2, 1)
        return flow0 + delta0, flow1 + delta1, ft + delta_ft

    def forward(self, img0, img1, embt):
        # one axis at a time, as the released model rounds it
        mean = torch.cat([img0, img1], 2).mean(1, keepdim=True).mean(2, keepdim=True).mean(3, keepdim=True)
        img0, img1 = img0 - mean, img1 - mean
        b, _, h, w = img0.shape
        coord = coords_grid(b, h // 8, w // 8, img0.device)
        fmap0, fmap1 = self.feat_encoder([img0, img1])
        corr_fn = BidirCorrBlock(fmap0, fmap1, self.corr_levels, self.radius)
        f0_1, f0_2, f0_3, f0_4 = self.encoder(img0)
        f1_1, f1_2, f1_3, f1_4 = self.encoder(img1)

        flow0, flow1, ft = self.decoder4(f0_4, f1_4, embt)
        flow0, flow1, ft = self._refine(self.update4, corr_fn, coord, flow0, flow1, ft, embt, 1)
        flow0, flow1, ft = self.decoder3(ft, f0_3, f1_3, flow0, flow1)
        flow0, flow1, ft = self._refine(self.update3, corr_fn, coord, flow0, flow1, ft, embt, 2)
        flow0, flow1, ft = self.decoder2(ft, f0_2, f1_2, flow0, flow1)
        flow0, flow1, ft = self._refine(self.update2, corr_fn, coord, flow0, flow1, ft, embt, 4)
        flow0, flow1, mask, residual = self.decoder1(ft, f0_1, f1_1, flow0, flow1)
        return torch.clamp(self._combine(img0, img1, flow0, flow1, mask, residual, mean), 0, 1)

    def _combine(self, img0, img1, flow0, flow1, mask, residual, mean):
        """Warp both frames by each of the flow fields, blend by the masks, average and add the conv block's
        correction."""
        b, c, h, w = flow0.shape
        n = c // 2
        warped0 = warp(img0.repeat_interleave(n, 0), flow0.reshape(b * n, 2, h, w))
        warped1 = warp(img1.repeat_interleave(n, 0), flow1.reshape(b * n, 2, h, w))
        mask = mask.reshape(b * n, 1, h, w)
        blended = mask * warped0 + (1 - mask) * warped1 + mean.repeat_interleave(n, 0) + residual.reshape(b * n, 3, h, w)
        blended = blended.reshape(b, n, 3, h, w)
        return blended.mean(1) + self.comb_block(blended.view(b, -1, h, w))
