"""Scene functions the tests render (shipped to workers by value)."""

from vuer.schemas import AmbientLight, Box, Sphere

# Where the geometry test's marker sphere sits, in world coordinates.
TARGET = (0.37, 0.21, -0.28)


def dot_scene(params):
    """A small bright unlit sphere at TARGET on black: its centroid is its projection."""
    return [Sphere(key="dot", args=[0.03, 24, 12], position=list(TARGET),
                   materialType="basic", material={"color": "#ffffff"})]


def broken_scene(params):
    if params.get("explode"):
        raise RuntimeError("this scene cannot be built")
    if params.get("garbage"):
        return ["not an element"]
    return [AmbientLight(key="amb", intensity=1.0),
            Box(key="b", args=[1, 1, 1], materialType="basic", material={"color": "#00ff00"})]
