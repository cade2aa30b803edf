// Amodal silhouettes, their GL side: programs, targets and buffers (amodal.js draws).
//
// Each labelled object's whole silhouette, as if nothing hid it, for every id at once: the
// labelled meshes drawn again, with this context's own programs, without a depth test,
// each writing 1.0 into a channel of its own (4 a colour attachment, 8 attachments: 32
// ids a render) with additive blending, which saturates at 1 in an 8-bit channel: the
// channel says "covered", however many of the object's triangles overlap there. A second
// pass packs 8 pixels of a channel into a byte, so an id costs an eighth of a byte a pixel
// to read back and send. BOP counts a silhouette on a canvas three times the image's size
// around it (a part cut off by the border counts): the ids whose silhouette touches the
// image's border are drawn once more with the field of view widened threefold, whose
// middle third is the image pixel for pixel (the projection's x and y scaled by 1/3).
// The first render uses three.js's own matrices and vertex maths, so a pixel an object
// shows in the frame is one its silhouette covers; the worker adds the visible mask anyway.
// Only meshes have silhouettes (points and lines: their visible pixels).
const SLOTS = 32;
const PLANES = 8; // attachments a silhouette render writes
const EXTEND = 3;
const silhouettes = new WeakMap(); // gl -> {programs, vao, buffers, targets}

function program(gl, vs, fs) {
  const p = gl.createProgram();
  for (const [type, src] of [[gl.VERTEX_SHADER, vs], [gl.FRAGMENT_SHADER, fs]]) {
    const sh = gl.createShader(type);
    gl.shaderSource(sh, src);
    gl.compileShader(sh);
    if (!gl.getShaderParameter(sh, gl.COMPILE_STATUS)) {
      throw new Error(`amodal shader: ${gl.getShaderInfoLog(sh)}`);
    }
    gl.attachShader(p, sh);
  }
  gl.linkProgram(p);
  if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error(`amodal program: ${gl.getProgramInfoLog(p)}`);
  return p;
}

const OUTS = [...Array(PLANES).keys()];
const upTo = (n) => OUTS.slice(0, n);
const SILHOUETTE_VS = `#version 300 es
in highp vec3 position;
uniform highp mat4 uMV;
uniform highp mat4 uP;
void main() { gl_Position = uP * (uMV * vec4(position, 1.0)); }`;
// The pack program is made for the number of planes a render needs (n outputs, n inputs):
// SwiftShader runs every output and every fetch a shader names, used or not (all 8 planes
// each time cost 3 to 5 times what 1 to 3 do).
// The silhouette program writes one plane: each plane's ids are drawn in a pass of their
// own into that plane alone (one output a fragment: SwiftShader blends every attachment a
// draw has bound, so n planes at once cost n times the fragments).
const SILHOUETTE_FS = `#version 300 es
precision highp float;
precision highp int;
uniform int uChannel;
out vec4 o;
void main() { o = vec4(equal(ivec4(uChannel), ivec4(0, 1, 2, 3))); }`;
const PACK_VS = `#version 300 es
void main() {
vec2 p = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));
gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}`;
const PACK_FS = (n) => `#version 300 es
precision highp float;
precision highp int;
uniform int uW;
${upTo(n).map((i) => `uniform highp sampler2D t${i};\nlayout(location = ${i}) out vec4 p${i};`).join("\n")}
vec4 pack(highp sampler2D t, ivec2 q) {
vec4 acc = vec4(0.0);
for (int b = 0; b < 8; b++) {
  int x = q.x * 8 + b;
  if (x >= uW) break;
  acc += step(0.5, texelFetch(t, ivec2(x, q.y), 0)) * float(1 << b);
}
return acc / 255.0;
}
void main() {
ivec2 q = ivec2(gl_FragCoord.xy);
${upTo(n).map((i) => `  p${i} = pack(t${i}, q);`).join("\n")}
}`;

function silhouetteState(gl) {
  let s = silhouettes.get(gl);
  if (s) return s;
  s = {programs: new Map(), vao: gl.createVertexArray(), emptyVao: gl.createVertexArray(),
       buffers: new WeakMap(), targets: new Map()};
  silhouettes.set(gl, s);
  return s;
}

// The silhouette and pack programs for n planes, and their locations, made once.
function programsFor(gl, s, n) {
  let p = s.programs.get(n);
  if (p) return p;
  s.draw = s.draw || program(gl, SILHOUETTE_VS, SILHOUETTE_FS);
  const draw = s.draw;
  const pack = program(gl, PACK_VS, PACK_FS(n));
  p = {draw, pack, position: gl.getAttribLocation(draw, "position"),
       uMV: gl.getUniformLocation(draw, "uMV"), uP: gl.getUniformLocation(draw, "uP"),
       uChannel: gl.getUniformLocation(draw, "uChannel"), uW: gl.getUniformLocation(pack, "uW"),
       samplers: upTo(n).map((i) => gl.getUniformLocation(pack, `t${i}`))};
  s.programs.set(n, p);
  return p;
}

// A framebuffer with `n` RGBA8 textures of w x h, kept for the next frame of that size,
// and a framebuffer of each texture alone (a plane's own pass).
function target(gl, s, name, w, h, n) {
  const key = `${name}:${w}x${h}:${n}`;
  let t = s.targets.get(key);
  if (t) return t;
  const fb = gl.createFramebuffer();
  gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
  const textures = [...Array(n).keys()].map((i) => {
    const tex = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, tex);
    gl.texStorage2D(gl.TEXTURE_2D, 1, RGBA8, w, h);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
    gl.framebufferTexture2D(gl.FRAMEBUFFER, A0 + i, gl.TEXTURE_2D, tex, 0);
    return tex;
  });
  const alone = textures.map((tex) => {
    const one = gl.createFramebuffer();
    gl.bindFramebuffer(gl.FRAMEBUFFER, one);
    gl.framebufferTexture2D(gl.FRAMEBUFFER, A0, gl.TEXTURE_2D, tex, 0);
    return one;
  });
  t = {fb, alone, textures, w, h, n};
  s.targets.set(key, t);
  return t;
}

// Draw into all `n` textures of a target.
function bindTarget(gl, s, name, w, h, n) {
  const t = target(gl, s, name, w, h, n);
  gl.bindFramebuffer(gl.FRAMEBUFFER, t.fb);
  gl.drawBuffers(OUTS.slice(0, n).map((i) => A0 + i));
  return t;
}

// The GL buffer of a geometry's attribute or index, uploaded again when three.js says it
// changed (its version).
function glBuffer(gl, s, attr, kind) {
  const owner = attr.isInterleavedBufferAttribute ? attr.data : attr;
  let b = s.buffers.get(owner);
  if (!b) { b = {buf: gl.createBuffer(), version: -1}; s.buffers.set(owner, b); }
  if (b.version !== owner.version) {
    gl.bindBuffer(kind, b.buf);
    gl.bufferData(kind, owner.array, gl.STATIC_DRAW);
    b.version = owner.version;
  }
  return b.buf;
}
