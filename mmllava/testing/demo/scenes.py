"""The scene model of the demo data and its drawing.

A scene holds one to three shapes on a plain light background. Each shape
lies wholly inside its own cell of a 3 x 3 grid, so shapes never overlap and
the position word of each (left, centre or right; top, middle or bottom, read
from its box centre) is plain to see.
"""
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

SHAPES = ('circle', 'square', 'triangle')
# Saturated colours far apart in RGB and all dark enough to stand out on
# the background; yellow is a deep gold for that reason.
COLOURS = {
    'red': (220, 40, 40),
    'green': (40, 160, 60),
    'blue': (40, 80, 220),
    'yellow': (230, 190, 0),
    'purple': (140, 60, 180),
    'orange': (245, 125, 20),
}
BACKGROUND = (245, 244, 238)
# Side of a shape as a fraction of the image side. A large shape must fit a
# grid cell (a third of the side) at 32 px; a small one still shows its
# corners there.
SIZES = {'small': 0.18, 'large': 0.28}
MIN_IMAGE_SIZE = 32
SUPERSAMPLE = 4
COLUMNS = ('left', 'centre', 'right')
ROWS = ('top', 'middle', 'bottom')


@dataclass(frozen=True)
class SceneObject:
    """One drawn shape.

    Args:
        shape (str): One of :data:`SHAPES`.
        colour (str): One of :data:`COLOURS`, unique within its scene, so
            ``"the red circle"`` names one object.
        size (str): ``'small'`` or ``'large'``.
        box (tuple): ``(x1, y1, x2, y2)`` in pixels; ``x2`` and ``y2`` are
            exclusive, so the width is ``x2 - x1``.
        row (int): 0, 1 or 2 for top, middle or bottom, from the box centre.
        column (int): 0, 1 or 2 for left, centre or right, from the box
            centre.
    """

    shape: str
    colour: str
    size: str
    box: tuple[int, int, int, int]
    row: int
    column: int

    @property
    def name(self) -> str:
        """The name that refers to this object, e.g. ``'red circle'``."""
        return f'{self.colour} {self.shape}'

    @property
    def full_name(self) -> str:
        """Size, colour and shape, e.g. ``'large red circle'``."""
        return f'{self.size} {self.colour} {self.shape}'

    @property
    def position(self) -> str:
        """Where the object is: ``'top left'``, ``'left'``, ``'centre'``..."""
        if self.row == 1:
            return COLUMNS[self.column]
        if self.column == 1:
            return ROWS[self.row]
        return f'{ROWS[self.row]} {COLUMNS[self.column]}'


@dataclass(frozen=True)
class Scene:
    """A generated image and what is in it.

    Args:
        id (str): ``'{split}_{index:05d}'``.
        split (str): ``'train'`` or ``'eval'``.
        image (str): The image path relative to the output directory.
        image_size (int): Side of the square image in pixels.
        objects (tuple): The :class:`SceneObject` s in reading order (top to
            bottom, then left to right).
    """

    id: str
    split: str
    image: str
    image_size: int
    objects: tuple[SceneObject, ...]

    def to_dict(self) -> dict:
        """The scene as written to ``scenes.json``."""
        side = self.image_size
        return dict(
            id=self.id,
            split=self.split,
            image=self.image,
            objects=[
                dict(
                    shape=obj.shape,
                    colour=obj.colour,
                    size=obj.size,
                    position=obj.position,
                    box=list(obj.box),
                    box_norm=[round(v / side, 3) for v in obj.box])
                for obj in self.objects
            ])


def grid_cell(box: tuple[int, int, int, int],
              image_size: int) -> tuple[int, int]:
    """Return the ``(row, column)`` of the 3 x 3 grid cell that holds the
    centre of ``box``."""
    x1, y1, x2, y2 = box
    # 3 * centre / side, with the centre at (x1 + x2) / 2.
    return int(1.5 * (y1 + y2) / image_size), int(1.5 * (x1 + x2) /
                                                  image_size)


def _place(rng: random.Random, cell: int, side: int, image_size: int) -> int:
    """Pick the first pixel of a ``side``-pixel span inside grid cell
    ``cell`` along one axis, one pixel clear of the cell's edges where the
    cell has room, so that neighbouring shapes do not touch."""
    low = -(-cell * image_size // 3)
    high = (cell + 1) * image_size // 3 - side
    if high - low >= 2:
        low, high = low + 1, high - 1
    if high < low:
        raise ValueError(f'A {side} px shape does not fit a grid cell of a '
                         f'{image_size} px image')
    return rng.randint(low, high)


def sample_scene(rng: random.Random, scene_id: str, split: str,
                 image_size: int) -> Scene:
    """Draw a random scene layout.

    Args:
        rng (random.Random): The source of randomness.
        scene_id (str): The scene id; the image is ``images/{scene_id}.png``.
        split (str): ``'train'`` or ``'eval'``.
        image_size (int): Side of the square image in pixels.

    Returns:
        Scene: One to three shapes with distinct colours in distinct cells.
    """
    num_objects = rng.randint(1, 3)
    cells = sorted(rng.sample(range(9), num_objects))
    colours = rng.sample(list(COLOURS), num_objects)
    objects = []
    for cell, colour in zip(cells, colours):
        size = rng.choice(tuple(SIZES))
        side = round(SIZES[size] * image_size)
        row, column = divmod(cell, 3)
        x1 = _place(rng, column, side, image_size)
        y1 = _place(rng, row, side, image_size)
        box = (x1, y1, x1 + side, y1 + side)
        objects.append(
            SceneObject(rng.choice(SHAPES), colour, size, box,
                        *grid_cell(box, image_size)))
    return Scene(scene_id, split, f'images/{scene_id}.png', image_size,
                 tuple(objects))


def shape_mask(shape: str, side: int) -> Image.Image:
    """A ``side`` x ``side`` mode-'L' mask of a shape filling its box: 255
    inside, 0 outside.

    The shape is drawn at :data:`SUPERSAMPLE` times the size and a pixel
    belongs to it if the shape covers at least half of the pixel: small
    shapes keep a truer outline than PIL's direct rasterization gives, and
    the edges stay hard, so every shape pixel has exactly its colour's RGB
    value.
    """
    big = side * SUPERSAMPLE
    mask = Image.new('L', (big, big), 0)
    draw = ImageDraw.Draw(mask)
    if shape == 'circle':
        draw.ellipse((0, 0, big - 1, big - 1), fill=255)
    elif shape == 'square':
        draw.rectangle((0, 0, big - 1, big - 1), fill=255)
    else:
        # A flat top one output pixel wide keeps the apex row, which
        # coverage alone would drop for even sides, so the box stays tight.
        top = (big - SUPERSAMPLE) / 2
        draw.polygon([(top, 0), (big - top, 0), (big, big), (0, big)],
                     fill=255)
    return mask.resize((side, side), Image.BOX).point(
        lambda value: 255 if value >= 128 else 0)


def draw_scene(scene: Scene) -> Image.Image:
    """Render a scene as an RGB image."""
    image = Image.new('RGB', (scene.image_size, scene.image_size), BACKGROUND)
    for obj in scene.objects:
        x1, y1, x2, _ = obj.box
        image.paste(COLOURS[obj.colour], (x1, y1),
                    mask=shape_mask(obj.shape, x2 - x1))
    return image
