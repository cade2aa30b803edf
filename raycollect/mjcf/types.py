"""MuJoCo's geom types (mjtGeom), which geoms.py and cubemap.py both dispatch on."""

PLANE, HFIELD, SPHERE, CAPSULE, ELLIPSOID, CYLINDER, BOX, MESH = range(8)
