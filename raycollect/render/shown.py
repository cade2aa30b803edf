"""What a render worker's page shows: the scene it was last sent, as the worker needs it for
every later view of that scene. Its robots (URDFs whose joint values each job sets), whether
any element is placed per view, and its ids (raycollect/render/ids.py), with the assets folder
the scene's files resolve in."""

from __future__ import annotations

from pathlib import Path

from .. import assets as asset_folder, scene as scenes, urdf
from ..config import Config
from ..jobs import Lease
from .ids import SceneIds


class Shown:
    def __init__(self, config: Config):
        self.config = config
        self.assets_root: Path | None = None  # the folder on this node (assets.materialize)
        self.aliases: tuple = ()  # the assets folder as the driver saw it (file:// paths)
        self.robots: dict = {}  # key -> urdf.Robot
        self.moving = False  # some element is placed per view
        self.skinned = False  # some element is skinned per view
        self.ids: SceneIds | None = None

    def new_scene(self, job_id: str, elements: list) -> None:
        """A scene about to be sent: its files checked (a missing one fails the job, naming
        it), its robots read."""
        self.robots = asset_folder.check_sources(job_id, elements, self.assets_root, self.aliases)
        self.moving = any(scenes.is_moving(el) for el in elements)
        self.skinned = any(scenes.is_skinned(el) for el in elements)

    def joints(self, lease: Lease, elements: list) -> dict:
        """What the page sets for one job's view: {robot key: complete joint values}
        (raycollect/urdf.py) and, for a scene with moving elements, {POSES_KEY: {key:
        placement}} (raycollect/scene.py), with skinned ones {SKINS_KEY: {key: bones}}.
        Raises InvalidJob for a joint its robot lacks."""
        if not self.needs_elements():
            return {}
        out = {str(el.key): urdf.joint_values(lease.job_id, f"scene[{i}].jointValues",
                                              self.robots[str(el.key)],
                                              getattr(el, "jointValues", None))
               for i, el in enumerate(elements) if str(el.key) in self.robots}
        if self.moving:
            out[scenes.POSES_KEY] = scenes.poses(elements)
        if self.skinned:
            out[scenes.SKINS_KEY] = scenes.skins(elements)
        return out

    def needs_elements(self) -> bool:
        """Whether `joints` reads a job's elements (else it needs none built)."""
        return bool(self.robots or self.moving or self.skinned)

    async def groups(self, queue, elements: list, joints: dict, job_id: str) -> list:
        """Complete the scene's URDFs (paths resolved, the first job's joint values as the
        robots' own; raycollect/urdf.py), give what it draws its ids (render/ids.py), and
        wrap each element in its instance group (raycollect/render/stage.py)."""
        for el in elements:
            robot = self.robots.get(str(el.key))
            if robot is None:
                continue
            el.jointValues = joints[str(el.key)]
            path = asset_folder.local_path(el.src, self.assets_root)
            if getattr(el, "packages", None):  # Vuer's own mapping, when given, wins
                el.text = urdf.page_text(path)
            else:
                el.text = urdf.resolved_text(path, self.assets_root, self.aliases)
        self.ids = await SceneIds.assign(queue, elements, self.robots, self.config, job_id)
        return self.ids.groups(elements)
