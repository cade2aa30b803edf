// Per-view state: each job view's joint values and placements, set before it renders.
//
// Jobs that differ only in joint values share one scene update: the worker sends each
// job's joint values in an update, in the userData of a group of its own
// ({rcStates: {rev, jobs: [{robot key: {joint: value}}, ...]}}), and grabs the views in
// order. Before the n-th job view of that update renders, its joints are set; once the
// frame, its passes and its labels are taken they are set back to what React gave the
// robot. The header names the state a frame shows (`state`), which the worker checks.
let stateRev = null;
let stateNext = 0;
const applied = new Map(); // renderer -> {index, restore}
// Moving elements' placements in a job's state (setPoses below), and skinned elements' bones
// (skin.js).
const POSES_KEY = "rc-poses";
const SKINS_KEY = "rc-skins";

function applyViewState(r, scene) {
  try {
    setViewState(r, scene);
  } catch (e) {  // reported with the frame (header.error), which the worker retries
    applied.set(r, {index: -1, error: String(e && e.message ? e.message : e), restore() {}});
  }
}

function setViewState(r, scene) {
  const {states: carrier, groups} = elements(scene);
  if (!carrier) return;
  if (carrier.rev !== stateRev) { stateRev = carrier.rev; stateNext = 0; }
  const index = stateNext++;
  const job = carrier.jobs[index];
  const undo = [];
  if (job) {
    for (const key in job) {
      if (key === POSES_KEY) { setPoses(job[key], groups, undo, index); continue; }
      if (key === SKINS_KEY) { setSkins(job[key], groups, undo, index); continue; }
      const robot = groups[key] ? robotIn(groups[key]) : null;
      if (!robot) throw new Error(`no robot ${key} on the page for view state ${index}`);
      for (const name in job[key]) {
        const joint = robot.joints[name];
        if (!joint) continue;
        const before = joint.jointValue.slice();
        undo.push(() => joint.setJointValue(...before));
        joint.setJointValue(job[key][name]);
      }
    }
  }
  applied.set(r, {index, restore() { for (const f of undo.reverse()) f(); }});
}

// Moving elements (raycollect/scene.py `moving`): {key: [x, y, z, qx, qy, qz, qw]}, the
// placement of the element's own object (its instance group's first child), which the
// render's matrix update then carries to everything below it.
function setPoses(poses, groups, undo, index) {
  for (const key in poses) {
    const el = groups[key] && groups[key].children[0];
    if (!el) throw new Error(`no element ${key} on the page for view state ${index}`);
    const p = el.position.clone(), q = el.quaternion.clone();
    undo.push(() => { el.position.copy(p); el.quaternion.copy(q); });
    el.position.fromArray(poses[key], 0);
    el.quaternion.fromArray(poses[key], 3);
  }
}

// Skinned elements (skin.js): {key: bones}. Set after the placements (a skin's vertices are
// in the world frame and follow no placement).
function setSkins(skins, groups, undo, index) {
  for (const key in skins) {
    const el = groups[key] && groups[key].children[0];
    if (!el) throw new Error(`no element ${key} on the page for view state ${index}`);
    undo.push(setSkin(el, skins[key], index));
  }
}
