"""URDF path resolution, joint values, labels and export maths: pure, no Ray, no browser."""

from __future__ import annotations

import numpy as np
import pytest

from raycollect.output import bop, coco
import meshgen
from raycollect import labels, urdf
from raycollect.errors import InvalidJob


def _urdf(path, meshes):
    path.parent.mkdir(parents=True, exist_ok=True)
    visuals = "".join(f'<link name="l{i}"><visual><geometry><mesh filename="{m}"/></geometry>'
                      f'</visual></link>' for i, m in enumerate(meshes))
    path.write_text(f'<robot name="r">{visuals}<joint name="j" type="revolute"><parent link="l0"/>'
                    f'<child link="l1"/></joint><joint name="f" type="fixed"><parent link="l0"/>'
                    f'<child link="l2"/></joint></robot>')
    return path


def test_package_paths_resolve_like_ros_and_pybullet(tmp_path):
    root = tmp_path / "assets"
    for rel in ("franka/meshes/a.stl", "xarm/xarm_description/meshes/b.stl", "pkg/m/c.stl"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    # package://meshes/... beside the URDF (the Panda); package://NAME/... in a subfolder (xArm)
    assert urdf.resolve("package://meshes/a.stl", root / "franka/p.urdf", root) == root / "franka/meshes/a.stl"
    assert urdf.resolve("package://xarm_description/meshes/b.stl", root / "xarm/x.urdf", root) \
        == root / "xarm/xarm_description/meshes/b.stl"
    # NAME is the URDF's own package folder, found going up from pkg/urdf/
    assert urdf.resolve("package://pkg/m/c.stl", root / "pkg/urdf/r.urdf", root).resolve() \
        == (root / "pkg/m/c.stl").resolve()
    assert urdf.resolve("package://nope/a.stl", root / "franka/p.urdf", root) is None
    # file:// inside the folder, under its own path or the driver's (an alias), and outside
    assert urdf.resolve(f"file://{root}/pkg/m/c.stl", root / "pkg/urdf/r.urdf", root) is not None
    assert urdf.resolve("file:///elsewhere/assets/pkg/m/c.stl", root / "pkg/urdf/r.urdf", root,
                        (tmp_path.parent / "nowhere",)) is None
    assert urdf.resolve("file:///home/u/assets/pkg/m/c.stl", root / "pkg/urdf/r.urdf", root,
                        (tmp_path / "x",)) is None
    from pathlib import Path
    assert urdf.resolve("file:///home/u/assets/pkg/m/c.stl", root / "pkg/urdf/r.urdf", root,
                        (Path("/home/u/assets"),)) == root / "pkg/m/c.stl"
    # never outside the folder
    assert urdf.resolve("../../etc/passwd", root / "franka/p.urdf", root) is None


def test_resolved_text_and_checks(tmp_path):
    root = tmp_path
    meshgen.write_stl(root / "pkg/meshes/a.stl", *meshgen.box())
    u = _urdf(root / "pkg/urdf/r.urdf", ["package://pkg/meshes/a.stl", "package://pkg/meshes/a.stl"])
    assert 'filename="../meshes/a.stl"' in urdf.resolved_text(u, root)
    robot = urdf.check("j1", "scene[0].src", u, root)
    assert robot.movable == ["j"] and robot.links == ("l0", "l1")
    bad = _urdf(root / "pkg/urdf/bad.urdf", ["package://pkg/meshes/missing.stl"])
    with pytest.raises(InvalidJob, match="bad.urdf references 'package://pkg/meshes/missing.stl'"):
        urdf.check("j1", "scene[0].src", bad, root)


def test_joint_values_are_complete_and_checked(tmp_path):
    robot = urdf.Robot("r", ("a", "b"), {"j": "revolute", "k": "prismatic", "f": "fixed"}, ())
    assert urdf.joint_values("j1", "f", robot, {"j": 1}) == {"j": 1.0, "k": 0.0}
    with pytest.raises(InvalidJob, match=r"unknown joint\(s\) 'elbow'.*its joints: j, k, f"):
        urdf.joint_values("j1", "scene[2].jointValues", robot, {"elbow": 1})
    with pytest.raises(InvalidJob, match="must be a number"):
        urdf.joint_values("j1", "f", robot, {"j": "x"})


def test_boxes_and_rle():
    mask = np.zeros((5, 7), np.uint16)
    mask[1:3, 2:6] = 4
    mask[4, 0] = 9
    assert labels.boxes(mask) == {4: ([2, 1, 4, 2], 8), 9: ([0, 4, 1, 1], 1)}
    # a 2x2 mask with one pixel set at (row 1, col 0): column-major runs of 0s and 1s
    binary = np.array([[0, 0], [1, 0]], bool)
    assert coco.rle(binary) == {"size": [2, 2], "counts": "112"}  # runs 1, 1, 2


def test_bop_rotation_takes_out_scale_and_axes():
    R = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])
    assert np.allclose(bop.rotation(R @ np.diag([2, 3, 0.5])), R)
    c2w = np.eye(4)
    c2w[:3, 3] = [0, 0, 2]  # at z=2 looking down -Z (OpenGL)
    w2c = bop.world_to_camera(c2w)
    assert np.allclose(w2c[:3, :3], np.diag([1, -1, -1])) and np.allclose(w2c[:3, 3], [0, 0, 2])
    assert bop.depth_scale(np.array([1.0, 6.0])) == 0.1 and bop.depth_scale(np.array([7.0])) == 1.0


def test_a_bad_xml_version_is_made_one_for_the_page(tmp_path):
    u = tmp_path / "t.urdf"
    u.write_text('<?xml version="0.0" ?>\n<robot name="t"><link name="a"/></robot>')
    assert urdf.page_text(u).startswith('<?xml version="1.0" ?>')
    u.write_text("<?xml version='1.0'?><robot name='t'/>")
    assert urdf.page_text(u) == "<?xml version='1.0'?><robot name='t'/>"


def test_urdfs_as_pybullet_reads_them(tmp_path):
    """pybullet_data ships URDFs with blank lines before the XML declaration, a NUL after
    </robot> and commas in an xyz: read as pybullet reads them, for the checks and the page."""
    u = tmp_path / "t.urdf"
    u.write_text('\n\n<?xml version="1.0"?>\n<robot name="t"><link name="a"/><link name="b"/>'
                 '<joint name="j" type="continuous"><parent link="a"/><child link="b"/>'
                 '<origin rpy=" 0 0 0 " xyz="-0.69, 0, -0.42"/></joint></robot>\x00')
    assert urdf.parse(u).movable == ["j"]
    text = urdf.page_text(u)
    assert text.startswith("<?xml") and text.endswith("</robot>")
    assert 'xyz="-0.69  0  -0.42"' in text


def test_relative_paths_are_found_above_the_urdf_as_pybullet_finds_them(tmp_path):
    (tmp_path / "differential").mkdir()
    (tmp_path / "differential" / "ring.stl").write_bytes(b"x")
    u = _urdf(tmp_path / "racecar" / "car.urdf", ["differential/ring.stl"])
    assert urdf.resolve("differential/ring.stl", u, tmp_path).resolve() == \
        (tmp_path / "differential" / "ring.stl").resolve()
    assert 'filename="../differential/ring.stl"' in urdf.resolved_text(u, tmp_path)
