// Labels: where every element and link was when the frame was drawn.
//
// What the page rendered, read from three.js after the render: for every element that has
// an instance id (its group's userData.rcId), the world matrix of the element's own object
// (the group's first child) and, for a URDF robot, the world matrix of every link frame.
// Matrices are column-major (three.js order) and in the user's world: relative to the group
// that holds the scene (userData.rcWorld), which turns a Z-up world into three.js's Y-up.
function labels(scene) {
  const {world, groups} = elements(scene);
  const found = Object.values(groups).filter((g) => g.userData.rcId);
  const inv = world ? world.matrixWorld.clone().invert() : null;
  const rel = (obj) => {
    const m = obj.matrixWorld.clone();
    return Array.from((inv ? m.premultiply(inv) : m).elements);
  };
  const out = {};
  for (const group of found) {
    const el = group.children[0];
    const rec = {pose: el ? rel(el) : null};
    const robot = el ? robotIn(el) : null;
    if (robot) {
      rec.links = {};
      for (const name in robot.links) rec.links[name] = rel(robot.links[name]);
    }
    if (el && group.userData.rcLinks && !robot) {  // parts (masks="geoms"): scene.js
      rec.parts = {};
      el.traverse((o) => {
        if (o.userData && o.userData.rcPart !== undefined) rec.parts[o.userData.rcPart] = rel(o);
      });
    }
    out[group.userData.rcKey] = rec;
  }
  return out;
}
