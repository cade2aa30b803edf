// The separate passes: a render per pass, for a scene the one render (mrt.js) cannot take.
// Each pass renders the same scene and camera again with every material replaced by a
// clone whose fragment shader ends by writing the pass's value (shaders.js). Clones keep
// everything that moves or discards geometry (skinning, morphs, point size, alpha test,
// sides), and write exactly: no blending, no tone mapping, no colour conversion (the value
// is written after all of that), and the view's context has no antialiasing.
const passMaterials = new WeakMap(); // original material -> {depth, masks: Map(id -> clone)}
const depthUniforms = {rcFar: {value: 1.0}};

function passMaterial(orig, pass, id) {
  let entry = passMaterials.get(orig);
  if (!entry) {
    entry = {depth: null, masks: new Map()};
    passMaterials.set(orig, entry);
    orig.addEventListener("dispose", () => {
      if (entry.depth) entry.depth.dispose();
      entry.masks.forEach((m) => m.dispose());
    });
  }
  if (pass === "depth" && entry.depth) return entry.depth;
  if (pass === "mask" && entry.masks.has(id)) return entry.masks.get(id);
  const m = orig.clone();
  m.transparent = false;
  m.blending = NO_BLENDING;
  m.opacity = 1;
  m.depthWrite = true;
  m.depthTest = true;
  m.colorWrite = true;
  const rgb = idColour(id);
  const own = ownHook(orig);
  if (orig.isShaderMaterial) {
    // A shader material's program reads material.uniforms itself: share the user's uniform
    // objects (so values set later reach the pass) in an object of the clone's own.
    m.uniforms = Object.assign({}, orig.uniforms);
  }
  m.onBeforeCompile = (shader, renderer) => {
    if (own) own.call(m, shader, renderer);
    const d = dialect(shader);
    shader.vertexShader = `${d.vout} highp float vRcW;\n` +
      shader.vertexShader.replace(/\}\s*$/, "\n  vRcW = gl_Position.w;\n}");
    if (pass === "depth") {
      shader.uniforms.rcFar = depthUniforms.rcFar;
      shader.fragmentShader = `${d.vin} highp float vRcW;\nuniform highp float rcFar;\n` +
        shader.fragmentShader.replace(/\}\s*$/, DEPTH_TAIL(d.out));
    } else {
      shader.uniforms.rcId = {value: rgb};
      shader.fragmentShader = `${d.vin} highp float vRcW;\nuniform highp vec3 rcId;\n` +
        shader.fragmentShader.replace(/\}\s*$/, MASK_TAIL(d.out));
    }
  };
  const key0 = orig.customProgramCacheKey.bind(orig);
  m.customProgramCacheKey = () => key0() + "|rc-" + pass;
  if (pass === "depth") entry.depth = m; else entry.masks.set(id, m);
  return m;
}

function swapMaterials(scene, pass) {
  const swapped = [];
  drawn(scene, (obj, id) => {
    const orig = obj.material;
    obj.material = Array.isArray(orig) ? orig.map((m) => passMaterial(m, pass, id))
      : passMaterial(orig, pass, id);
    swapped.push([obj, orig]);
  });
  return swapped;
}

function renderPass(r, scene, camera, pass, w, h) {
  // A Color-like holder: Color.copy and Color.set read r, g, b of anything with isColor.
  const clear = {isColor: true, r: 0, g: 0, b: 0,
                 copy(c) { this.r = c.r; this.g = c.g; this.b = c.b; return this; }};
  r.getClearColor(clear);
  const saved = {background: scene.background, fog: scene.fog, override: scene.overrideMaterial,
                 shadows: r.shadowMap.enabled, clearAlpha: r.getClearAlpha()};
  scene.background = null;
  scene.fog = null;
  scene.overrideMaterial = null;
  r.shadowMap.enabled = false;
  if (pass === "depth") depthUniforms.rcFar.value = camera.far;
  const swapped = swapMaterials(scene, pass);
  passErrors = [];
  try {
    r.setRenderTarget(null);
    r.setClearColor(0x000000, 1);
    r.clear(true, true, true);
    r.render(scene, camera);
    if (passErrors.length) throw new Error(`the ${pass} pass: ${passErrors.join(" | ")}`);
    return readRGBA(r, w, h);
  } finally {
    passErrors = null;
    for (const [obj, orig] of swapped) obj.material = orig;
    scene.background = saved.background;
    scene.fog = saved.fog;
    scene.overrideMaterial = saved.override;
    r.shadowMap.enabled = saved.shadows;
    r.setClearColor(clear, saved.clearAlpha);
  }
}

function readRGBA(r, w, h) {
  const gl = r.getContext();
  const px = new Uint8Array(w * h * 4);
  gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, px);
  return px;
}
