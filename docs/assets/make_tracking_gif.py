"""Make docs/assets/tracking_nuclei.gif: `masktron predict --track bytetrack` on a simulated
microscope pan over a bundled DSB2018 image (CC0), drawn by masktron, as a GIF.

    python docs/assets/make_tracking_gif.py     # a few minutes on a CPU

The "video" is a 160x120 window, shown at twice its size, moving 6 px right and 4 px down per
frame over masktron/model_zoo/demo_images/dsb2018_val_1f6b7cead153.png, so every nucleus moves
the same way and keeps one id (one colour) while it is in view; nuclei entering at the edges get
new ids. The GIF has 32 colours and no dithering to stay small.
"""

from __future__ import annotations

import os
import sys
import tempfile

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SOURCE = os.path.join(REPO, "masktron", "model_zoo", "demo_images", "dsb2018_val_1f6b7cead153.png")
FRAMES, ORIGIN, STEP, WINDOW, ZOOM, FPS = 16, (200, 100), (6, 4), (160, 120), 2, 6


def main() -> int:
    sys.path.insert(0, REPO)
    from masktron.cli.main import main as masktron
    from masktron.data.video import VideoReader

    image = Image.open(SOURCE).convert("RGB")
    with tempfile.TemporaryDirectory() as tmp:
        frames = os.path.join(tmp, "pan")
        os.makedirs(frames)
        for k in range(FRAMES):
            x, y = ORIGIN[0] + k * STEP[0], ORIGIN[1] + k * STEP[1]
            crop = image.crop((x, y, x + WINDOW[0], y + WINDOW[1]))
            size = (WINDOW[0] * ZOOM, WINDOW[1] * ZOOM)
            crop.resize(size, Image.Resampling.BICUBIC).save(f"{frames}/{k:03d}.png")
        out = os.path.join(tmp, "out")
        config = "masktron/mask_rcnn_R18s_FPN_gn_dsb2018.yaml"
        args = [frames, "--track", "bytetrack", "--fps", str(FPS), "--config", config]
        code = masktron(["predict", *args, "--out", out, "--device", "cpu"])
        if code:
            return code
        drawn = [Image.fromarray(f.image[:, :, ::-1]) for f in VideoReader(f"{out}/pan.mp4")]
    palette = [
        f.quantize(colors=32, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        for f in drawn
    ]
    target = os.path.join(HERE, "tracking_nuclei.gif")
    palette[0].save(target, save_all=True, append_images=palette[1:], duration=1000 // FPS, loop=0)
    print(f"wrote {target} ({os.path.getsize(target) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
