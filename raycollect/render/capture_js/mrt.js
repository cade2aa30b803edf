// One render for every pass (WebGL2 multiple render targets).
//
// The view's own render of the scene (the client's, into its render target) also writes
// the depth and instance-id values, to two more colour attachments of that target: every
// material of the scene is patched (in place, once) to declare two more outputs
// (locations 1 and 2) and write them after everything else, like the separate passes'
// tails (shaders.js). A patched program writes them only while its draw buffers say so: during
// a job view's render this script turns the target's draw buffers on for patched
// programs only, so whatever else three.js draws into the target (a clear, a background
// mesh) leaves depth and ids at 0. The instance id and the far plane are uniforms that
// three.js does not know about, set right before each draw for the object being drawn.
// Outputs beyond a framebuffer's draw buffers are discarded, so the patched programs
// draw as before everywhere else.
// A scene that holds a material this cannot draw exactly in one render (a GLSL ES 1.00
// raw shader, which has no second output; one that does not write depth or colour, or
// blends other than normally without per-buffer blending) takes the separate passes for
// that frame (passes.js); the header says which (`page.mode`). context.js turns the
// outputs on and off draw by draw.
const mrtFrames = new Map(); // renderer -> {fb, ...} of its last job view, drawn with MRT
const fallbacks = new Map(); // renderer -> why its last job view took the separate passes

function patchMaterial(m) {
  if (patched.has(m)) return;
  const own = ownHook(m);
  const key = Object.prototype.hasOwnProperty.call(m, "customProgramCacheKey")
    ? m.customProgramCacheKey.bind(m) : () => String(own);
  patched.set(m, {own});
  m.onBeforeCompile = (shader, renderer) => {
    if (own) own.call(m, shader, renderer);
    mrtShader(shader);
  };
  m.customProgramCacheKey = () => key() + "|rc-mrt";
  m.needsUpdate = true;
}

// Which material cannot be drawn exactly in the one render, and why (null: it can).
function mrtBlocker(m, indexed) {
  if (m.isRawShaderMaterial && m.glslVersion !== "300 es") return "a GLSL ES 1.00 raw shader";
  // A transparent material that does not write depth (a grid, a glass) is drawn after
  // every opaque one, back to front: it writes depth and id where it is in front, as the
  // separate passes (which make it write depth) have it. An opaque one is not.
  if (m.depthTest === false || m.colorWrite === false || (m.depthWrite === false && !m.transparent)) {
    return "a material that does not test depth or write colour, or an opaque one that does not write depth";
  }
  if (!indexed && m.blending !== NO_BLENDING && (m.blending !== NORMAL_BLENDING)) {
    return "a blending mode other than normal";
  }
  return null;
}

// Every drawn object's instance id (as the mask pass writes it), its materials, and
// whether the scene can be drawn in one render.
function mrtPlan(r, scene) {
  const st = instrument(r);
  const ids = new Map();
  const frames = new Map();
  const materials = [];
  let maxId = 0;
  let why = scene.overrideMaterial ? "an override material" : null;
  drawn(scene, (obj, id, frame) => {
    ids.set(obj, idColour(id));
    if (id > maxId) maxId = id;
    frames.set(obj, frame);
    for (const m of [].concat(obj.material)) {
      if (!m.visible) continue;
      const blocker = mrtBlocker(m, st.indexed);
      if (blocker && !why) why = `${blocker} (${m.type} of ${obj.type} ${obj.name || ""})`.trim();
      materials.push(m);
    }
  });
  const target = r.getRenderTarget();
  const c = r.domElement;
  if (!why && (target.width !== c.width || target.height !== c.height)) {
    why = "a render target of another size than its canvas";
  }
  return {ok: !why, why, ids, frames, materials, target, ids24: maxId > 255 || !packIds};
}

// Two RGBA8 renderbuffers at attachments 1 and 2 of the view target's framebuffer, made
// again when three.js makes a new framebuffer (a resized target).
function attach(st, fb, w, h) {
  const gl = st.gl;
  if (st.attached && st.attached.fb === fb && st.attached.w === w && st.attached.h === h) return;
  if (st.attached) st.attached.rbs.forEach((rb) => gl.deleteRenderbuffer(rb));
  if (EXTRA.some((i) => i > 2) && !gl.getExtension("EXT_color_buffer_float")) {
    throw new Error("normals and coords need float colour buffers (EXT_color_buffer_float), " +
                    "which this browser's WebGL does not have");
  }
  const rbs = EXTRA.map((i) => {
    const rb = gl.createRenderbuffer();
    gl.bindRenderbuffer(gl.RENDERBUFFER, rb);
    gl.renderbufferStorage(gl.RENDERBUFFER, i > 2 ? RGBA32F : RGBA8, w, h);
    gl.framebufferRenderbuffer(gl.DRAW_FRAMEBUFFER, A0 + i, gl.RENDERBUFFER, rb);
    return rb;
  });
  gl.bindRenderbuffer(gl.RENDERBUFFER, null);
  st.attached = {fb, w, h, rbs};
}

function renderMRT(r, render, scene, camera, plan) {
  const st = instrument(r);
  const gl = st.gl;
  for (const m of plan.materials) patchMaterial(m);
  const fb = gl.getParameter(gl.DRAW_FRAMEBUFFER_BINDING);
  st.drawFb = fb;
  const {width: w, height: h} = plan.target;
  attach(st, fb, w, h);
  // Nothing drawn: depth 0, id 0. The client clears only attachment 0 (it clears before
  // this render, and the render's own clear runs with the other draw buffers off).
  r.state.buffers.color.setMask(true);
  st.wideBuffers = plan.ids24 ? WIDE : PACKED;
  drawBuffers(st, true);
  for (const i of EXTRA) gl.clearBufferfv(gl.COLOR, i, [0, 0, 0, 0]);
  drawBuffers(st, false);
  st.active = {fb, ids: plan.ids, frames: plan.frames, toFrame: new Map(), far: camera.far};
  let out;
  try {
    out = render.call(r, scene, camera);
  } finally {
    st.active = null;
    // Back to what three.js set for the target and remembers.
    const bound = st.drawFb;
    if (bound !== fb) gl.bindFramebuffer(gl.DRAW_FRAMEBUFFER, fb);
    gl.drawBuffers([A0]);
    st.wide = false;
    if (bound !== fb) gl.bindFramebuffer(gl.DRAW_FRAMEBUFFER, bound);
  }
  mrtFrames.set(r, {fb, w, h, ids24: plan.ids24});
  fallbacks.delete(r);
  return out;
}

// The attachments of a view's last MRT render, as payload blocks [name, pixels, type]
// (grab.js): depth and the ids' low byte as they are ("d24i8", 4 bytes a pixel), the 24-bit
// ids only when a frame has ids above 255, then normals and coordinates.
function readMRT(r, frame) {
  const gl = r.getContext();
  const prev = gl.getParameter(gl.READ_FRAMEBUFFER_BINDING);
  gl.bindFramebuffer(gl.READ_FRAMEBUFFER, frame.fb);
  const read = (attachment, float) => {
    gl.readBuffer(A0 + attachment);
    const n = frame.w * frame.h * 4;
    const px = float ? new Float32Array(n) : new Uint8Array(n);
    gl.readPixels(0, 0, frame.w, frame.h, gl.RGBA, float ? gl.FLOAT : gl.UNSIGNED_BYTE, px);
    return px;
  };
  try {
    const out = [];
    const mask = IMAGE_PASSES.includes("mask");
    if (mask || IMAGE_PASSES.includes("depth")) out.push(["depth_id", read(1, false), "d24i8"]);
    if (mask && frame.ids24) out.push(["mask", read(2, false), "u8x3"]);
    for (const pass of IMAGE_PASSES.filter((p) => FLOAT_PASSES.has(p))) {
      out.push([pass, read(ATTACHMENT[pass], true), "f32x3"]);
    }
    return out;
  } finally {
    gl.readBuffer(A0);
    gl.bindFramebuffer(gl.READ_FRAMEBUFFER, prev);
  }
}
