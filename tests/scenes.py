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


# Flat, unlit colours on black: with no lighting, tone mapping or antialiasing, a lossless
# frame holds exactly black and these colours (a JPEG does not).
FLAT_COLORS = ("#e63946", "#2a9d8f", "#f4a261", "#457b9d")


def flat_scene(params):
    return [Box(key=f"flat{i}", args=[0.5, 0.5, 0.5], position=[-1.2 + 0.8 * i, 0, 0],
                rotation=[0.3, 0.4 * i, 0], materialType="basic",
                material={"color": c, "toneMapped": False})
            for i, c in enumerate(FLAT_COLORS)]


# Depth and masks: a wall whose front face is the plane z = -WALL_Z, and boxes in front of it
# at known positions (world coordinates; cameras look at them from around +Z).
WALL_Z = 2.5
BOXES = {"red": (-0.6, 0.3, -1.2), "green": (0.5, -0.2, -0.8), "blue": (0.1, 0.5, -1.6)}
BOX_SIDE = 0.3


def depth_scene(params):
    wall = Box(key="wall", args=[40, 40, 0.02], position=[0, 0, -WALL_Z - 0.01],
               materialType="standard", material={"color": "#8d99ae"})
    boxes = [Box(key=name, args=[BOX_SIDE] * 3, position=list(pos), materialType="standard",
                 material={"color": color})
             for (name, pos), color in zip(BOXES.items(), ("#ff0000", "#00ff00", "#0000ff"))]
    return [AmbientLight(key="amb", intensity=1.0), wall, *boxes]


# Models from an assets folder (tests/test_assets.py writes the files).
def model_scene(params):
    from vuer.schemas import DirectionalLight, Obj, Ply

    import raycollect as rc

    x = float(params.get("x", 0.0))
    return [AmbientLight(key="amb", intensity=0.8),
            DirectionalLight(key="sun", position=[2, 4, 3], intensity=1.5),
            Obj(key="cube", src=rc.asset(params.get("obj", "meshes/cube.obj")),
                position=[x - 0.5, 0, 0]),
            Ply(key="disc", src=rc.asset(params.get("ply", "meshes/disc.ply")),
                position=[x + 0.5, 0, 0])]


def arm_scene(params):
    from vuer.schemas import DirectionalLight, Urdf

    import raycollect as rc

    return [AmbientLight(key="amb", intensity=0.8),
            DirectionalLight(key="sun", position=[2, 4, 3], intensity=1.5),
            Urdf(key="arm", src=rc.asset("robot/arm.urdf"), position=[0, 0, 0])]


# One model element of each kind, by params["kind"] (tests/test_assets.py writes the files).
MODEL_KINDS = {"stl": "models/box.stl", "glb": "models/box.glb", "pcd": "models/ball.pcd",
               "textured": "tex/crate.obj"}


def kind_scene(params):
    from vuer.schemas import DirectionalLight, Glb, Obj, Pcd, Stl

    import raycollect as rc

    kind, x = params["kind"], float(params.get("x", 0.0))
    src = rc.asset(MODEL_KINDS[kind])
    element = {"stl": lambda: Stl(key="model", src=src, position=[x, 0, 0]),
               "glb": lambda: Glb(key="model", src=src, position=[x, 0, 0]),
               "pcd": lambda: Pcd(key="model", src=src, position=[x, 0, 0], size=0.02),
               "textured": lambda: Obj(key="model", src=src, mtl=rc.asset("tex/crate.mtl"),
                                       position=[x, 0, 0])}[kind]()
    return [AmbientLight(key="amb", intensity=1.0),
            DirectionalLight(key="sun", position=[0, 2, 4], intensity=1.0), element]


# An opaque material that does not write depth cannot be drawn exactly in the one render
# that makes colour, depth and ids (raycollect/render/capture_js/): a scene that holds one takes the
# separate passes. This box sits behind every CAMERAS pose, out of view.
def depth_scene_separate(params):
    return [*depth_scene(params),
            Box(key="nodepth", args=[0.1, 0.1, 0.1], position=[0, 0, 60], materialType="basic",
                material={"depthWrite": False})]
