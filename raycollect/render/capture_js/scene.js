// The one walk of the scene and the one id encoding, which every other file reads the scene
// through.
//
// raycollect/render/stage.py wraps each top-level element in an instance group whose
// userData says what it is: rcId (its instance id), rcKey (its key), rcModel (it loads a
// file) and, with masks="links", rcLinks ({link name: id}). Everything below a group is that
// element's: its pixels carry the element's id, and its object coordinates are in the
// frame of the element's own object (the group's first child, whose pose the labels
// report); with masks="links" a URDF link's meshes (its visuals, below it up to the next
// link) carry the link's own id and frame. So a pixel's id says which frame its coordinates
// are in. The world group (userData.rcWorld) and the per-view states (userData.rcStates,
// view_state.js) are found on the same walk.
const NO_ELEMENT = Object.freeze({group: null, key: null, model: false, links: null, id: 0});
const ZERO_ID = [0, 0, 0]; // idColour(0): nothing

// visit(obj, at) for every object below the scene, parents first, `at` the element it
// belongs to: {group, key, model, links, id, frame}. Invisible objects and what they hold
// are left out unless `hidden` (the passes draw only what is shown; what is loaded counts
// whether shown or not).
function walk(scene, visit, hidden = false) {
  (function down(obj, at) {
    if (!hidden && !obj.visible) return;
    const ud = obj.userData;
    if (ud && ud.rcId !== undefined) {
      at = {group: obj, key: ud.rcKey, model: !!ud.rcModel, links: ud.rcLinks || null,
            id: ud.rcId, frame: obj.children[0] || obj};
    }
    if (at.links && obj.isURDFLink) {
      // The robot object is its root link too, but named after the robot.
      let name = obj.name;
      if (obj.isURDFRobot) for (const n in obj.links) if (obj.links[n] === obj) name = n;
      if (at.links[name] !== undefined) at = Object.assign({}, at, {id: at.links[name], frame: obj});
    }
    // A part (masks="geoms": an MJCF geom's group, userData.rcPart) has its own id and frame.
    if (at.links && ud && ud.rcPart !== undefined && at.links[ud.rcPart] !== undefined) {
      at = Object.assign({}, at, {id: at.links[ud.rcPart], frame: obj});
    }
    visit(obj, at);
    for (const child of obj.children) down(child, at);
  })(scene, Object.assign({}, NO_ELEMENT, {frame: scene}));
}

// What the passes draw: every shown object that has a material, with its id and frame.
function drawn(scene, visit) {
  walk(scene, (obj, at) => { if (obj.material) visit(obj, at.id, at.frame); });
}

// The scene's elements: {world, states, groups: {key: instance group}}.
function elements(scene) {
  const out = {world: null, states: null, groups: {}};
  walk(scene, (obj, at) => {
    const ud = obj.userData;
    if (ud && ud.rcWorld) out.world = obj;
    if (ud && ud.rcStates) out.states = ud.rcStates;
    if (obj === at.group && ud.rcKey !== undefined) out.groups[ud.rcKey] = obj;
  }, true);
  return out;
}

// The first URDF robot at or below an object, or null.
function robotIn(obj) {
  let robot = null;
  obj.traverse((o) => { if (!robot && o.isURDFRobot) robot = o; });
  return robot;
}

// An instance id as the mask pass writes it: 24 bits in R, G, B, least significant first.
function idColour(id) {
  return [id & 255, (id >> 8) & 255, (id >> 16) & 255].map((v) => v / 255);
}
