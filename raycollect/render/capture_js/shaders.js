// Shaders: the code raycollect adds to the scene's own shaders, for the separate passes
// (passes.js: a tail that writes depth or the id instead of the colour) and for the one
// render of every pass (mrt.js: more outputs written after the colour).
// The tails are written for every kind of material: three.js's own (GLSL ES 3.00 behind
// its defines), a ShaderMaterial with glslVersion GLSL3 (which declares its own output and
// has no gl_FragColor) and a RawShaderMaterial in either version (no defines at all). The
// depth code uses float arithmetic only, exact for integers below 2^24, so it also compiles
// as GLSL ES 1.00.
const MRT_MARK = "rcMrtDepth"; // names the depth output: a program that has it is patched
const patched = new WeakMap(); // material -> {own: the user's onBeforeCompile or null}
// three.js's own shaders (by their ShaderLib id): their vertex shader has `transformed`
// (the vertex after morphs and skinning, in the model frame) and `mvPosition` (in the
// camera frame, after instancing); the lit ones' fragment shader has `normal`, the
// shading normal in the camera frame after normal and bump maps, facing the viewer.
const BUILTIN = new Set(["basic", "lambert", "phong", "standard", "physical", "toon",
                         "normal", "matcap", "points", "dashed"]);
const LIT = new Set(["lambert", "phong", "standard", "physical", "toon", "normal", "matcap"]);

const DEPTH_BYTES = `
highp float rcZ = clamp(vRcW / rcFar, 0.0, 1.0);
highp float rcQ = floor(rcZ * 16777215.0 + 0.5);
highp float rcR = floor(rcQ / 65536.0);
highp float rcG = floor((rcQ - rcR * 65536.0) / 256.0);
highp float rcB = rcQ - rcR * 65536.0 - rcG * 256.0;`;
// The separate depth pass: the 24 bits in R, G, B, most significant first.
const DEPTH_TAIL = (out) => `${DEPTH_BYTES}
${out} = vec4(rcR, rcG, rcB, 255.0) / 255.0;
}`;
// The one render's depth output: the 24 bits in R, G, B, least significant first, and in A
// the low byte of the instance id (a frame with ids below 256 needs no other id output), or
// 1 where this context cannot keep blending off that output (packIds, context.js).
const MRT_DEPTH = (out, idInAlpha) => `${DEPTH_BYTES}
${out} = vec4(vec3(rcB, rcG, rcR) / 255.0, ${idInAlpha ? "rcId.x" : "1.0"});`;
const MASK_TAIL = (out) => `\n  ${out} = vec4(rcId, 1.0);\n}`;
const OUT_DECL = /(?:layout\s*\([^)]*\)\s*)?\bout\s+(?:(?:highp|mediump|lowp)\s+)?vec4\s+(\w+)\s*;/;

// How a material's shaders declare a varying and name the colour output.
function dialect(shader) {
  const glsl3 = shader.glslVersion === "300 es";
  const raw = shader.isRawShaderMaterial === true;
  const declared = glsl3 ? OUT_DECL.exec(shader.fragmentShader) : null;
  return {vout: raw && glsl3 ? "out" : "varying", vin: raw && glsl3 ? "in" : "varying",
          out: declared ? declared[1] : "gl_FragColor"};
}

// The user's own onBeforeCompile of a material, which raycollect's hooks call first.
function ownHook(m) {
  const p = patched.get(m);
  if (p) return p.own;
  return Object.prototype.hasOwnProperty.call(m, "onBeforeCompile") ? m.onBeforeCompile : null;
}

function declared(src, type, name) {
  return new RegExp(`\\b${type}\\s+${name}\\s*;`).test(src);
}

// The surface passes' vertex code: where the vertex is in the camera frame (for a normal
// from the surface's slope where the mesh has none), its normal, and where it is in its
// frame (rcToFrame: the drawn object's matrix into the frame of the thing its id names,
// set per draw like the id).
function surfaceVertex(shader, d) {
  const builtin = BUILTIN.has(shader.shaderID);
  const raw = shader.isRawShaderMaterial === true;
  const src = shader.vertexShader;
  let decl = `${d.vout} highp vec3 vRcV;\n${d.vout} highp vec3 vRcN;\n${d.vout} highp vec3 vRcC;\n` +
    "uniform highp mat4 rcToFrame;\n";
  const attr = raw ? "in" : "attribute";
  // three.js declares these for its own and ShaderMaterial shaders; a raw shader only has
  // what it declares itself (three.js sets the uniforms of any program that has them).
  const hasNormal = !raw || declared(src, "vec3", "normal");
  if (raw && !declared(src, "mat4", "modelViewMatrix")) decl += "uniform highp mat4 modelViewMatrix;\n";
  if (raw && hasNormal && !declared(src, "mat3", "normalMatrix")) decl += "uniform highp mat3 normalMatrix;\n";
  if (raw && !declared(src, "vec3", "position")) decl += `${attr} highp vec3 position;\n`;
  const local = builtin ? "transformed" : "position";
  const view = builtin ? "mvPosition.xyz" : "(modelViewMatrix * vec4(position, 1.0)).xyz";
  const body = `\n  vRcV = ${view};` +
    `\n  vRcN = ${hasNormal ? "normalMatrix * normal" : "vec3(0.0)"};` +
    `\n  vRcC = (rcToFrame * vec4(${local}, 1.0)).xyz;`;
  return {decl, body};
}

function surfaceFragment(shader, d) {
  const lit = LIT.has(shader.shaderID);
  const decl = `${d.vin} highp vec3 vRcV;\n${d.vin} highp vec3 vRcN;\n${d.vin} highp vec3 vRcC;\n` +
    (IMAGE_PASSES.includes("normals") ? "layout(location = 3) out highp vec4 rcMrtNormal;\n" : "") +
    (IMAGE_PASSES.includes("coords") ? "layout(location = 4) out highp vec4 rcMrtCoords;\n" : "");
  // A mesh without normals (and a flat-shaded unlit one) is shaded by its faces: the
  // normal of the surface's slope, as three.js computes it for flat shading.
  const normal = lit ? "normal" : `(dot(vRcN, vRcN) > 1e-20 ? vRcN * (gl_FrontFacing ? 1.0 : -1.0)
    : cross(dFdx(vRcV), dFdy(vRcV)))`;
  let body = "";
  if (IMAGE_PASSES.includes("normals")) {
    body += `\n  highp vec3 rcN = ${normal};` +
      "\n  rcMrtNormal = vec4(dot(rcN, rcN) > 1e-30 ? normalize(rcN) : vec3(0.0), 1.0);";
  }
  if (IMAGE_PASSES.includes("coords")) body += "\n  rcMrtCoords = vec4(vRcC, 1.0);";
  return {decl, body};
}

function mrtShader(shader) {
  const d = dialect(shader);
  const surface = IMAGE_PASSES.includes("normals") || IMAGE_PASSES.includes("coords");
  const sv = surface ? surfaceVertex(shader, d) : {decl: "", body: ""};
  const sf = surface ? surfaceFragment(shader, d) : {decl: "", body: ""};
  shader.vertexShader = `${d.vout} highp float vRcW;\n${sv.decl}` +
    shader.vertexShader.replace(/\}\s*$/, `\n  vRcW = gl_Position.w;${sv.body}\n}`);
  let frag = shader.fragmentShader;
  // Once there is more than one output, each needs its location.
  if (d.out !== "gl_FragColor") frag = frag.replace(OUT_DECL, `layout(location = 0) out highp vec4 ${d.out};`);
  shader.fragmentShader = `${d.vin} highp float vRcW;\nuniform highp float rcFar;\n` +
    `uniform highp vec3 rcId;\nlayout(location = 1) out highp vec4 ${MRT_MARK};\n` +
    `layout(location = 2) out highp vec4 rcMrtMask;\n${sf.decl}` +
    frag.replace(/\}\s*$/, MRT_DEPTH(MRT_MARK, packIds) +
                 MASK_TAIL("rcMrtMask").replace(/\}$/, "") + sf.body + "\n}");
}
