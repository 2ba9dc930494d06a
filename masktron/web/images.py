"""The image folder behind the page: listing, safe look-up, decoded pixels, thumbnails, uploads.

Only images listed from the folder can be read: a requested name must be one of the listed
names (so `../` or absolute paths never reach the file system), and a listed file must resolve
inside the folder (a symbolic link pointing elsewhere is not listed).
"""

from __future__ import annotations

import io
import os
import re
import threading
from collections import OrderedDict

import numpy as np
from PIL import Image

from masktron.data.image_io import get_image_size, read_image
from masktron.utils.file_io import atomic_open

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
THUMBNAIL_SIZE = 160
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,120}$")


class ImageNotFound(LookupError):
    """A name that is not an image of the folder."""


class ImageFolder:
    """The images directly inside `root` (sorted by name), decoded as `read_image` does.

    Args:
        root: the folder.
        max_upload_bytes: largest image file accepted by `add`.
    """

    def __init__(self, root: str, *, max_upload_bytes: int) -> None:
        self.root = os.path.realpath(root)
        if not os.path.isdir(self.root):
            raise NotADirectoryError(f"--images {root}: not a folder")
        self.max_upload_bytes = max_upload_bytes
        self.sizes: dict[str, tuple[int, int]] = {}  # name -> (height, width)
        self._lock = threading.Lock()
        self._pixels: OrderedDict[str, np.ndarray] = OrderedDict()
        self._thumbnails: dict[str, bytes] = {}
        for name in sorted(os.listdir(self.root)):
            if name.lower().endswith(EXTENSIONS) and self._inside(name):
                try:
                    self.sizes[name] = get_image_size(os.path.join(self.root, name))
                except OSError:
                    continue  # not an image after all

    def _inside(self, name: str) -> bool:
        path = os.path.realpath(os.path.join(self.root, name))
        return os.path.dirname(path) == self.root and os.path.isfile(path)

    @property
    def names(self) -> list[str]:
        return list(self.sizes)

    def path(self, name: str) -> str:
        """The file of a listed image; anything else raises `ImageNotFound`."""
        if name not in self.sizes or not self._inside(name):
            raise ImageNotFound(f"no image {name!r} in the folder")
        return os.path.join(self.root, name)

    def pixels(self, name: str) -> np.ndarray:
        """(H, W, 3) uint8 RGB, EXIF orientation applied (what the models see)."""
        path = self.path(name)
        with self._lock:
            if name in self._pixels:
                self._pixels.move_to_end(name)
                return self._pixels[name]
        array = read_image(path, format="RGB")
        with self._lock:
            self._pixels[name] = array
            while len(self._pixels) > 4:
                self._pixels.popitem(last=False)
        return array

    def jpeg(self, name: str) -> bytes:
        """The decoded pixels re-encoded for the page, so that the page shows exactly the
        pixels that SAM sees (EXIF rotation, alpha and grey levels resolved the same way)."""
        buffer = io.BytesIO()
        Image.fromarray(self.pixels(name)).save(buffer, format="JPEG", quality=92)
        return buffer.getvalue()

    def thumbnail(self, name: str) -> bytes:
        path = self.path(name)
        if name not in self._thumbnails:
            with Image.open(path) as image:
                image.draft("RGB", (THUMBNAIL_SIZE, THUMBNAIL_SIZE))  # JPEG: decode small
                image = image.convert("RGB")
                image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG", quality=80)
            self._thumbnails[name] = buffer.getvalue()
        return self._thumbnails[name]

    def add(self, name: str, data: bytes) -> str:
        """Save an uploaded image as `name` in the folder; returns the name.

        Raises:
            ValueError: a bad name, an existing file, too many bytes, or not an image.
        """
        if not _SAFE_NAME.match(name) or not name.lower().endswith(EXTENSIONS):
            raise ValueError(
                f"file name {name!r}: use letters, digits, '.', '_', '-' and an image "
                f"extension ({', '.join(EXTENSIONS)})"
            )
        if len(data) > self.max_upload_bytes:
            raise ValueError(f"{name}: {len(data)} bytes, over the {self.max_upload_bytes} limit")
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.verify()  # a real image, not a script with an image's name
        except Exception as e:
            raise ValueError(f"{name}: not an image file ({e})") from None
        target = os.path.join(self.root, name)
        if os.path.lexists(target):
            raise ValueError(f"{name}: a file of that name exists in the folder")
        with atomic_open(target, "wb") as f:
            f.write(data)
        self.sizes[name] = get_image_size(target)
        self.sizes = dict(sorted(self.sizes.items()))
        return name
