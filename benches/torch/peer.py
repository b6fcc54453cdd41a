"""PyTorch peer of pixelcnn's Gated PixelCNN, for side-by-side speed and likelihood figures.

The model is the one described in MODEL.md beside this file (arXiv 1606.05328, Figure 2), the
same arithmetic as the Rust crate's default gated model, so that the figures of both compare
like with like. Standard library, torch and numpy only.

    python3 peer.py bench [--config S|P] [--mode eager|compile|bf16] [--sampling]
        RESULT pytorch[-MODE] <S|P> <train_step|forward_16> <ms> lines, like `pixelcnn bench`;
        with --sampling, images/s of naive sampling (one forward pass per pixel) at batch 1, 16
        and 64, like `pixelcnn bench --sampling`.
    python3 peer.py train --data-dir DIR [--steps N ...]
        The training of `pixelcnn train --data-dir DIR` on MNIST's IDX files, then the test NLL
        as the one JSON line of `pixelcnn eval --json`; progress and the train time on stderr.
    python3 peer.py check
        Causality self-check of the model: exits non-zero if it fails.
    python3 peer.py logits --weights FILE.safetensors --input LEVELS.npy [--classes LABELS.npy]
                           --expected LOGITS.npy [--tolerance 1e-4]
        Loads the weights `pixelcnn export` wrote into this model, computes the logits of the
        input levels [B, 1, H, W], and exits non-zero unless they are within the tolerance of
        the expected ones [B, 1, K, H, W].
"""

import argparse
import gzip
import json
import math
import struct
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SIDE = 28
WARM_UP, REPEATS = 3, 20
# name: (layers after the first, channels, levels, train batch)
CONFIGS = {"S": (12, 16, 4, 64), "P": (10, 64, 256, 32)}


def gate(x):
    """tanh(a) * sigmoid(b) for the two channel halves [a, b] of x."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """One layer: vertical stack, shifted link into the horizontal stack, gate, skip, residual."""

    def __init__(self, in_ch, channels, kernel, first, classes=None):
        super().__init__()
        self.p, self.first = kernel // 2, first
        # Class conditioning (Section 2.3): V h added to both stacks' 2C pre-activations.
        self.condition = None if classes is None else nn.Linear(classes, 4 * channels, bias=False)
        self.vertical = nn.Conv2d(in_ch, 2 * channels, (self.p + 1, kernel))
        self.link = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal = nn.Conv2d(in_ch, 2 * channels, (1, self.p + 1))
        self.skip = nn.Conv2d(channels, channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, v, h, labels=None):
        height, width = v.shape[-2:]
        p = self.p
        # p+1 rows on top, none below: H+1 rows, row r covering input rows r-p-1..r-1.
        pre = self.vertical(F.pad(v, (p, p, p + 1, 0)))
        vertical = pre[:, :, 1:]  # row i sees rows i-p..i
        link = self.link(pre[:, :, :height])  # row i sees only rows above i
        if self.condition is not None:
            on_vertical, on_horizontal = self.condition(labels)[..., None, None].chunk(2, dim=1)
            vertical, link = vertical + on_vertical, link + on_horizontal
        v_out = gate(vertical)
        # Column j covers j-p..j; the first layer j-p-1..j-1 (one more pad, last column dropped).
        left = p + 1 if self.first else p
        hz = self.horizontal(F.pad(h, (left, 0, 0, 0)))[..., :width]
        g = gate(hz + link)
        h_out = self.out(g) if self.first else self.out(g) + h
        return v_out, h_out, self.skip(g)


class GatedPixelCNN(nn.Module):
    def __init__(self, levels, layers, channels, first_kernel=7, kernel=3, head_channels=32,
                 classes=None):
        super().__init__()
        self.levels = levels
        self.layers = nn.ModuleList(
            GatedLayer(1 if i == 0 else channels, channels, first_kernel if i == 0 else kernel,
                       i == 0, classes)
            for i in range(layers)
        )
        self.hidden = nn.Conv2d(channels, head_channels, 1)
        self.logits = nn.Conv2d(head_channels, levels, 1)

    def features(self, levels, labels=None):
        """The sum of the layers' skip outputs for levels [B, 1, H, W] (and, for a conditional
        model, one-hot labels [B, classes]): the head's input."""
        x = levels.to(self.hidden.weight.dtype) / (self.levels - 1)
        v = h = x
        skips = 0
        for layer in self.layers:
            v, h, skip = layer(v, h, labels)
            skips = skips + skip
        return skips

    def forward(self, levels, labels=None):
        """Logits [B, K, H, W] for levels [B, 1, H, W] (integers in 0..K)."""
        return self.logits(F.relu(self.hidden(F.relu(self.features(levels, labels)))))


def mean_nll(logits, levels):
    """Mean cross-entropy over pixels, in nats per dimension."""
    return F.cross_entropy(logits, levels[:, 0])


def adam(model, lr):
    return torch.optim.Adam(model.parameters(), lr=lr, eps=1e-8)


def median_ms(work):
    for _ in range(WARM_UP):
        work()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)[len(times) // 2]


def bench(name, mode):
    b_layers, channels, levels, batch = CONFIGS[name]
    torch.manual_seed(0)
    model = GatedPixelCNN(levels, b_layers + 1, channels)
    optimizer = adam(model, 1e-3)
    run = torch.compile(model) if mode == "compile" else model
    cast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16")
    targets = torch.randint(0, levels, (batch, 1, SIDE, SIDE))
    inputs = torch.randint(0, levels, (16, 1, SIDE, SIDE))

    def train_step():
        with cast():
            loss = mean_nll(run(targets), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()

    def forward_16():
        with torch.no_grad(), cast():
            run(inputs).sum().item()

    label = "pytorch" if mode == "eager" else f"pytorch-{mode}"
    for figure, work in [("train_step", train_step), ("forward_16", forward_16)]:
        print(f"RESULT {label} {name} {figure} {median_ms(work):.2f}", flush=True)


SAMPLING_BATCHES = [1, 16, 64]
# Naive sampling runs one forward pass of the same batch per pixel, so every pixel costs the
# same: one row of pixels is timed (after one warm-up row) and scaled to the whole image.
TIMED_PIXELS = SIDE


@torch.no_grad()
def bench_sampling(name, mode):
    b_layers, channels, levels, _ = CONFIGS[name]
    torch.manual_seed(0)
    model = GatedPixelCNN(levels, b_layers + 1, channels).eval()
    run = torch.compile(model) if mode == "compile" else model
    label = "pytorch" if mode == "eager" else f"pytorch-{mode}"
    for batch in SAMPLING_BATCHES:
        images = torch.zeros(batch, 1, SIDE, SIDE, dtype=torch.long)

        def draw(pixel):
            row, column = divmod(pixel, SIDE)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16"):
                logits = run(images)[:, :, row, column].float()
            images[:, 0, row, column] = torch.multinomial(F.softmax(logits, dim=1), 1)[:, 0]

        for pixel in range(TIMED_PIXELS):
            draw(pixel)
        start = time.perf_counter()
        for pixel in range(TIMED_PIXELS, 2 * TIMED_PIXELS):
            draw(pixel)
        per_pixel = (time.perf_counter() - start) / TIMED_PIXELS
        per_second = batch / (per_pixel * SIDE * SIDE)
        print(f"RESULT {label} {name} naive_images_per_s_b{batch} {per_second:.3f}", flush=True)


def read_idx(directory, stem):
    """The images [N, H, W] of the IDX file `stem` or `stem.gz` in directory, as bytes."""
    path = next((p for p in [directory / f"{stem}.gz", directory / stem] if p.exists()), None)
    if path is None:
        sys.exit(f"error: {directory} holds neither {stem} nor {stem}.gz")
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as file:
            data = file.read()
    except (OSError, EOFError) as error:
        sys.exit(f"error: cannot read {path}: {error}")
    if len(data) < 4 or data[:3] != b"\0\0\x08" or len(data) < 4 + 4 * data[3]:
        sys.exit(f"error: {path} is not an IDX file of unsigned bytes")
    dims = struct.unpack(f">{data[3]}I", data[4 : 4 + 4 * data[3]])
    if len(dims) != 3 or 0 in dims:
        sys.exit(f"error: {path} holds an array of shape {dims}, not images [N, H, W]")
    pixels = np.frombuffer(data, np.uint8, offset=4 + 4 * data[3])
    if pixels.size != math.prod(dims):
        sys.exit(f"error: {path} holds {pixels.size} values, its header says {dims}")
    return pixels.reshape(dims)


def quantize(images, levels):
    """level = floor(v * K / 256), as bytes [N, 1, H, W] (made int64 a batch at a time)."""
    return torch.from_numpy((images.astype(np.int32) * levels // 256).astype(np.uint8))[:, None]


def train(args):
    images = read_idx(args.data_dir, "train-images-idx3-ubyte")
    if len(images) < 2:
        sys.exit("error: at least 2 training images are needed (one is held out)")
    held_out = min(max(len(images) // 10, 1), 5000)  # the Rust split: the last 10%, ≤ 5,000
    train_set = quantize(images[: len(images) - held_out], args.levels)
    test_set = quantize(read_idx(args.data_dir, "t10k-images-idx3-ubyte"), args.levels)
    torch.manual_seed(args.seed)
    order_rng = np.random.default_rng(args.seed)
    model = GatedPixelCNN(args.levels, args.layers, args.channels, args.first_kernel,
                          args.kernel, args.head_channels)
    optimizer = adam(model, args.lr)
    batch = min(args.batch_size, len(train_set))
    per_epoch = len(train_set) // batch
    print(f"{sum(p.numel() for p in model.parameters())} parameters; "
          f"{len(train_set)} training, {len(test_set)} test images", file=sys.stderr)
    started = time.perf_counter()
    for step in range(args.steps):
        if step % per_epoch == 0:
            order = torch.from_numpy(order_rng.permutation(len(train_set)))
        position = step % per_epoch
        targets = train_set[order[position * batch : (position + 1) * batch]].long()
        loss = mean_nll(model(targets), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % 100 == 0 or step + 1 == args.steps:
            print(f"step {step + 1}: loss {loss.item() / math.log(2):.4f} bits/dim", file=sys.stderr)
    seconds = time.perf_counter() - started
    print(f"trained {args.steps} steps in {seconds:.1f} s "
          f"({seconds / args.steps * 1e3:.0f} ms/step)", file=sys.stderr)
    print(json.dumps(evaluate(model, test_set)), flush=True)


@torch.no_grad()
def evaluate(model, test_set, batch=500):
    total = 0.0
    for start in range(0, len(test_set), batch):
        targets = test_set[start : start + batch].long()
        total += F.cross_entropy(model(targets), targets[:, 0], reduction="sum").item()
    nll = total / len(test_set)
    dims = test_set.shape[-1] * test_set.shape[-2]
    return {"images": len(test_set), "nll_nats": nll, "bits_per_dim": nll / (dims * math.log(2))}


@torch.no_grad()
def check(side=7, levels=4):
    """Perturbs each pixel q of a random image in turn: no logit at q or before it (raster
    order) may change, and the head's input at every pixel after q must (no blind spot). The
    head is pointwise, so dependence is checked before its ReLUs, which could hide it."""
    torch.manual_seed(0)
    model = GatedPixelCNN(levels, layers=6, channels=8).double()
    image = torch.randint(0, levels, (1, 1, side, side))
    logits, features = model(image), model.features(image)
    failures = []
    for q in range(side * side):
        changed = image.clone()
        changed.view(-1)[q] = (changed.view(-1)[q] + 1) % levels
        logit_diff = (model(changed) - logits).abs().amax(dim=1).flatten()
        feature_diff = (model.features(changed) - features).abs().amax(dim=1).flatten()
        if logit_diff[: q + 1].max() > 0:
            failures.append(f"pixel {q} changes a logit at or before it")
        blind = (feature_diff[q + 1 :] == 0).nonzero().flatten() + q + 1
        if len(blind):
            failures.append(f"pixel {q} is not seen by pixels {blind.tolist()}")
    for failure in failures:
        print(failure, file=sys.stderr)
    print(f"check: {side}x{side} image, {side * side} pixels perturbed: "
          + ("FAILED" if failures else "causal, no blind spot"))
    return not failures


def read_safetensors(path):
    """The metadata and the tensors {name: array} of a safetensors file: an 8-byte little-endian
    header length, a JSON header (name -> dtype, shape, byte offsets), then the raw data."""
    data = Path(path).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    metadata = header.pop("__metadata__", {})
    body = data[8 + length :]
    tensors = {}
    for name, entry in header.items():
        if entry["dtype"] != "F32":
            sys.exit(f"error: {path}: tensor {name} is {entry['dtype']}, not F32")
        start, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(body[start:end], "<f4").reshape(entry["shape"])
    return metadata, tensors


# Names of pixelcnn's tensors (see `pixelcnn export`) for this model's modules.
RENAMED = {"vertical_to_horizontal": "link", "horizontal_output": "out", "head.": ""}


def load_exported(path):
    """This model with the weights of a file `pixelcnn export` wrote, and its class count."""
    metadata, tensors = read_safetensors(path)
    config = json.loads(metadata["pixelcnn.run_config"])["model"]
    conditioning = config["conditioning"]
    unsupported = [what for what, off in [
        ("a non-gated architecture", config["arch"] != "gated"),
        ("colour", config["input_channels"] != 1), ("a condition map", config["spatial"]),
        ("an auto-encoder", config["latent"]),
        ("vector conditioning", conditioning["kind"] == "embedding")] if off]
    if unsupported:
        sys.exit(f"error: the peer has no {', '.join(unsupported)}")
    classes = conditioning.get("classes")
    model = GatedPixelCNN(config["levels"], config["layers"], config["channels"],
                          config["first_kernel"], config["kernel"], config["head_channels"],
                          classes)
    state = {}
    for name, value in tensors.items():
        for ours, theirs in RENAMED.items():
            name = name.replace(ours, theirs)
        # burn's linear maps are [in, out]; PyTorch's Linear.weight is [out, in].
        state[name] = torch.from_numpy(value.T.copy() if ".condition." in name else value.copy())
    model.load_state_dict(state, strict=True)
    return model, classes


@torch.no_grad()
def logits(args):
    model, classes = load_exported(args.weights)
    levels = torch.from_numpy(np.load(args.input)).long()
    labels = None
    if classes is not None:
        if args.classes is None:
            sys.exit("error: a class-conditional model needs --classes")
        labels = F.one_hot(torch.from_numpy(np.load(args.classes)).long(), classes).float()
    ours = model(levels, labels)[:, None]
    expected = torch.from_numpy(np.load(args.expected))
    if ours.shape != expected.shape:
        sys.exit(f"error: logits of shape {list(ours.shape)}, expected {list(expected.shape)}")
    difference = (ours - expected).abs().max().item()
    print(f"largest difference from the expected logits: {difference:.3g} "
          f"(tolerance {args.tolerance:g}) over {expected.numel()} logits")
    return difference <= args.tolerance


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads [2]")
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("bench", help="time configs S and P")
    b.add_argument("--config", choices=sorted(CONFIGS), help="one config [both]")
    b.add_argument("--mode", choices=["eager", "compile", "bf16"], default="eager")
    b.add_argument("--sampling", action="store_true", help="time naive sampling instead")
    t = commands.add_parser("train", help="train on MNIST, then the test NLL")
    t.add_argument("--data-dir", type=Path, required=True, help="MNIST's IDX files (.gz or not)")
    for flag, kind, default in [("steps", int, 400), ("batch-size", int, 32), ("lr", float, 3e-3),
                                ("seed", int, 0), ("layers", int, 6), ("channels", int, 16),
                                ("levels", int, 4), ("first-kernel", int, 7), ("kernel", int, 3),
                                ("head-channels", int, 32)]:
        t.add_argument(f"--{flag}", type=kind, default=default, help=f"[{default}]")
    commands.add_parser("check", help="causality self-check")
    g = commands.add_parser("logits", help="the logits of exported weights against expected ones")
    for flag in ["weights", "input", "expected"]:
        g.add_argument(f"--{flag}", type=Path, required=True)
    g.add_argument("--classes", type=Path, help="labels [B] of a class-conditional model")
    g.add_argument("--tolerance", type=float, default=1e-4, help="[1e-4]")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.command == "bench":
        for name in [args.config] if args.config else ["S", "P"]:
            (bench_sampling if args.sampling else bench)(name, args.mode)
    elif args.command == "train":
        validate(parser, args)
        train(args)
    elif args.command == "logits":
        if not logits(args):
            sys.exit(1)
    elif not check():
        sys.exit(1)


def validate(parser, args):
    if not 2 <= args.levels <= 256:
        parser.error(f"--levels must be between 2 and 256, got {args.levels}")
    for name in ["steps", "batch_size", "layers", "channels", "head_channels"]:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.first_kernel % 2 == 0 or args.kernel % 2 == 0 or min(args.first_kernel, args.kernel) < 1:
        parser.error("kernel sizes must be odd and positive")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        parser.error(f"--lr must be a positive number, got {args.lr}")


if __name__ == "__main__":
    main()
