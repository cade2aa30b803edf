// Skinned elements (raycollect/scene.py `skinned`, MuJoCo's skins: raycollect/mjcf/skins.py):
// a group whose userData.rcSkin names its bones file, holding one mesh of the skin's
// triangles at the bind pose, one vertex per corner. Before a job view renders, the job's
// bone transforms move every vertex as MuJoCo does (linear blend skinning in double
// precision, then `inflate` along the normals); once the view is taken the bind pose is
// put back (view_state.js).
const SKIN_MAGIC = "RCSK";
const skinFiles = new Map(); // url -> {ready, failed, data}

function skinFile(url) {
  let entry = skinFiles.get(url);
  if (!entry) {
    entry = {ready: false, failed: null, data: null};
    skinFiles.set(url, entry);
    // window.fetch is loads.js's: the worker waits for it like any other load.
    window.fetch(url).then((r) => {
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      return r.arrayBuffer();
    }).then((buf) => { entry.data = parseSkin(buf); entry.ready = true; },
            (err) => { entry.failed = String(err && err.message ? err.message : err); });
  }
  return entry;
}

// The bones file (raycollect/mjcf/skins.py `bones_bytes`).
function parseSkin(buf) {
  const magic = String.fromCharCode(...new Uint8Array(buf, 0, 4));
  if (magic !== SKIN_MAGIC) throw new Error("not a skin bones file");
  const [nvert, ncorner, nbone] = new Uint32Array(buf, 4, 3);
  const inflate = new Float32Array(buf, 16, 1)[0];
  let at = 20;
  const take = (Type, n) => { const a = new Type(buf, at, n); at += 4 * n; return a; };
  const corners = take(Uint32Array, ncorner);
  const verts = take(Float32Array, 3 * nvert);
  const counts = take(Uint32Array, nbone);
  let total = 0;
  for (const c of counts) total += c;
  const ids = take(Uint32Array, total);
  const weights = take(Float32Array, total);
  return {nvert, ncorner, nbone, inflate, corners, verts, counts, ids, weights};
}

// Whether a skinned group's bones file has arrived (loads.js holds its model back until).
function skinReady(obj) {
  return skinFile(obj.userData.rcSkin).ready;
}

function skinMesh(el) {
  let mesh = null;
  el.traverse((o) => {
    if (!mesh && o.isMesh && o.geometry && o.geometry.attributes.position) mesh = o;
  });
  return mesh;
}

// MuJoCo's skin normals: per vertex the sum of its faces' edge cross products, normalised.
function skinNormals(s, pos) {
  const n = new Float64Array(3 * s.nvert);
  const c = s.corners;
  for (let f = 0; f < s.ncorner; f += 3) {
    const a = 3 * c[f], b = 3 * c[f + 1], d = 3 * c[f + 2];
    const ux = pos[b] - pos[a], uy = pos[b + 1] - pos[a + 1], uz = pos[b + 2] - pos[a + 2];
    const vx = pos[d] - pos[a], vy = pos[d + 1] - pos[a + 1], vz = pos[d + 2] - pos[a + 2];
    const nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
    for (const k of [a, b, d]) { n[k] += nx; n[k + 1] += ny; n[k + 2] += nz; }
  }
  for (let k = 0; k < n.length; k += 3) {
    const len = Math.hypot(n[k], n[k + 1], n[k + 2]);
    if (len > 0) { n[k] /= len; n[k + 1] /= len; n[k + 2] /= len; }
  }
  return n;
}

// The skin's vertices for `bones` ([tx, ty, tz, qx, qy, qz, qw] per bone).
function skinVertices(s, bones) {
  const out = new Float64Array(3 * s.nvert);
  const v = s.verts;
  let start = 0;
  for (let j = 0; j < s.nbone; j++) {
    const o = 7 * j;
    const tx = bones[o], ty = bones[o + 1], tz = bones[o + 2];
    let x = bones[o + 3], y = bones[o + 4], z = bones[o + 5], w = bones[o + 6];
    const len = Math.hypot(x, y, z, w);
    x /= len; y /= len; z /= len; w /= len;
    const r00 = 1 - 2 * (y * y + z * z), r01 = 2 * (x * y - w * z), r02 = 2 * (x * z + w * y);
    const r10 = 2 * (x * y + w * z), r11 = 1 - 2 * (x * x + z * z), r12 = 2 * (y * z - w * x);
    const r20 = 2 * (x * z - w * y), r21 = 2 * (y * z + w * x), r22 = 1 - 2 * (x * x + y * y);
    const end = start + s.counts[j];
    for (let k = start; k < end; k++) {
      const i = 3 * s.ids[k], wt = s.weights[k];
      const px = v[i], py = v[i + 1], pz = v[i + 2];
      out[i] += wt * (r00 * px + r01 * py + r02 * pz + tx);
      out[i + 1] += wt * (r10 * px + r11 * py + r12 * pz + ty);
      out[i + 2] += wt * (r20 * px + r21 * py + r22 * pz + tz);
    }
    start = end;
  }
  return out;
}

const bindPose = new WeakMap(); // geometry -> {position, normal} as loaded

// Move a skinned element's vertices for one view; returns the undo.
function setSkin(el, bones, index) {
  const url = el && el.userData && el.userData.rcSkin;
  if (!url) throw new Error(`no skinned element for view state ${index}`);
  const entry = skinFile(url);
  if (!entry.ready) throw new Error(`skin ${url} not loaded (${entry.failed || "in flight"})`);
  const s = entry.data;
  if (bones.length !== 7 * s.nbone) {
    throw new Error(`skin ${url}: ${bones.length / 7} bones in view state ${index}, file has ${s.nbone}`);
  }
  const mesh = skinMesh(el);
  const geo = mesh && mesh.geometry;
  const position = geo && geo.attributes.position;
  if (!position || position.count !== s.ncorner) {
    throw new Error(`skin ${url}: its mesh has ${position ? position.count : 0} corners, not ${s.ncorner}`);
  }
  const normal = geo.attributes.normal || null;
  if (!bindPose.has(geo)) {
    bindPose.set(geo, {position: position.array.slice(), normal: normal ? normal.array.slice() : null});
  }
  const pos = skinVertices(s, bones);
  let nrm = skinNormals(s, pos);
  if (s.inflate !== 0) {
    for (let k = 0; k < pos.length; k++) pos[k] += s.inflate * nrm[k];
  }
  const c = s.corners, pa = position.array, na = normal ? normal.array : null;
  for (let k = 0; k < s.ncorner; k++) {
    const i = 3 * c[k];
    pa[3 * k] = pos[i]; pa[3 * k + 1] = pos[i + 1]; pa[3 * k + 2] = pos[i + 2];
    if (na) { na[3 * k] = nrm[i]; na[3 * k + 1] = nrm[i + 1]; na[3 * k + 2] = nrm[i + 2]; }
  }
  skinChanged(geo);
  return () => {
    const bind = bindPose.get(geo);
    pa.set(bind.position);
    if (na && bind.normal) na.set(bind.normal);
    skinChanged(geo);
  };
}

function skinChanged(geo) {
  geo.attributes.position.needsUpdate = true;
  if (geo.attributes.normal) geo.attributes.normal.needsUpdate = true;
  // three.js culls by the bounding sphere: a stale one would drop a skin that moved.
  geo.computeBoundingSphere();
  if (geo.boundingBox) geo.computeBoundingBox();
}
