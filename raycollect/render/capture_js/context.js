// A view's WebGL context, instrumented: which program draws into which framebuffer, so
// each draw of the one render (mrt.js) turns the id and depth outputs on or off and sets
// their uniforms; and the client's own read of the canvas, so the frame is read once.
const contexts = new WeakMap(); // gl -> its draw-call state (instrument())
// The attachments beyond the colour one: depth and ids (RGBA8, always attached, since
// every patched program writes both), normals and coords (RGBA32F) when asked for.
const NONE = 0;
const EXTRA = [1, 2, ...["normals", "coords"].filter((p) => IMAGE_PASSES.includes(p))
                                            .map((p) => ATTACHMENT[p])];
const WIDE = [A0, ...[1, 2, 3, 4].map((i) => (EXTRA.includes(i) ? A0 + i : NONE))]
  .slice(0, Math.max(...EXTRA) + 1);
const NARROW = WIDE.map((b, i) => (i === 0 ? A0 : NONE));
// A frame whose ids are all below 256 leaves the 24-bit id output off: the depth output
// carries the id's low byte (shaders.js MRT_DEPTH), one attachment fewer to write and read.
const PACKED = WIDE.map((b, i) => (i === 2 ? NONE : b));
// Whether the depth output carries the id's low byte: only where blending can be turned off
// for it alone (OES_draw_buffers_indexed), since a blended alpha would change the depth.
// Decided by the first context, before any program is patched; every context of a page
// has the same extensions.
let packIds = null;

// Wrap the calls of a view's context that say which program draws into which
// framebuffer, so each draw can turn the id and depth outputs on or off.
function instrument(r) {
  const gl = r.getContext();
  let st = contexts.get(gl);
  if (st) return st;
  st = {gl, ours: new WeakSet(), marked: new WeakSet(), program: null,
        drawFb: gl.getParameter(gl.DRAW_FRAMEBUFFER_BINDING),
        readFb: gl.getParameter(gl.READ_FRAMEBUFFER_BINDING),
        active: null, wide: false, object: null, locs: new WeakMap(), serial: 0,
        canvasRead: null, blend: false, indexed: gl.getExtension("OES_draw_buffers_indexed")};
  contexts.set(gl, st);
  if (packIds === null) packIds = !!st.indexed;
  const wrap = (name, before) => {
    const f = gl[name];
    gl[name] = function (...args) { before(...args); return f.apply(gl, args); };
  };
  wrap("shaderSource", (s, src) => { if (src.includes(MRT_MARK)) st.marked.add(s); });
  wrap("attachShader", (p, s) => { if (st.marked.has(s)) st.ours.add(p); });
  wrap("useProgram", (p) => { st.program = p; });
  wrap("bindFramebuffer", (t, fb) => {
    if (t === gl.FRAMEBUFFER || t === gl.DRAW_FRAMEBUFFER) st.drawFb = fb;
    if (t === gl.FRAMEBUFFER || t === gl.READ_FRAMEBUFFER) st.readFb = fb;
  });
  // The client reads the canvas's pixels itself before it asks for the blob, and drops
  // them: the frame, read once.
  const readPixels0 = gl.readPixels;
  gl.readPixels = function (...args) {
    const out = readPixels0.apply(gl, args);
    const [x, y, w, h, format, type, px] = args;
    if (st.readFb === null && x === 0 && y === 0 && format === gl.RGBA &&
        type === gl.UNSIGNED_BYTE && px instanceof Uint8Array && px.length === w * h * 4) {
      st.canvasRead = {px, w, h, serial: st.serial};
    }
    return out;
  };
  wrap("enable", (cap) => { if (cap === gl.BLEND) st.blend = true; });
  wrap("disable", (cap) => { if (cap === gl.BLEND) st.blend = false; });
  const beforeDraw = () => { if (st.active && st.drawFb === st.active.fb) prepareDraw(st); };
  for (const name of ["drawArrays", "drawElements", "drawArraysInstanced",
                      "drawElementsInstanced", "drawRangeElements"]) wrap(name, beforeDraw);
  const rbd = r.renderBufferDirect;
  r.renderBufferDirect = function (cam, scene, geometry, material, object, group) {
    st.object = object;
    return rbd.call(this, cam, scene, geometry, material, object, group);
  };
  return st;
}

function drawBuffers(st, wide) {
  st.gl.drawBuffers(wide ? st.wideBuffers : NARROW);
  st.wide = wide;
}

function prepareDraw(st) {
  const gl = st.gl;
  const ours = st.ours.has(st.program);
  if (ours !== st.wide) drawBuffers(st, ours);
  if (!ours) return;
  let loc = st.locs.get(st.program);
  if (!loc) {
    loc = {id: gl.getUniformLocation(st.program, "rcId"),
           far: gl.getUniformLocation(st.program, "rcFar"), lastId: null, lastFar: null};
    st.locs.set(st.program, loc);
  }
  const id = st.active.ids.get(st.object) || ZERO_ID;
  if (loc.lastId !== id) { gl.uniform3fv(loc.id, id); loc.lastId = id; }
  if (loc.lastFar !== st.active.far) { gl.uniform1f(loc.far, st.active.far); loc.lastFar = st.active.far; }
  if (loc.toFrame === undefined) loc.toFrame = gl.getUniformLocation(st.program, "rcToFrame");
  if (loc.toFrame !== null) gl.uniformMatrix4fv(loc.toFrame, false, toFrame(st.active, st.object));
  // Blending is for the colour; ids, depth, normals and coords are written as they are.
  if (st.blend && st.indexed) for (const i of EXTRA) st.indexed.disableiOES(gl.BLEND, i);
}

// The drawn object's matrix into its frame's (walk()), once per object and render: its
// world matrix is up to date once three.js draws it.
function toFrame(active, obj) {
  let m = active.toFrame.get(obj);
  if (!m) {
    const frame = active.frames.get(obj) || obj;
    const rel = obj.matrixWorld.clone();
    if (frame === obj) rel.identity(); // the mesh is the element: its own frame
    else rel.premultiply(frame.matrixWorld.clone().invert());
    m = new Float32Array(rel.elements);
    active.toFrame.set(obj, m);
  }
  return m;
}

