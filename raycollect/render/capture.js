// raycollect's capture script: inlined at the top of the Vuer client's page by every render
// worker (raycollect/render/server.py), before the client's own modules run.
//
// Why: the client answers a grab by encoding its canvas as a JPEG (lossy), and its depth
// pass writes 8-bit grey. This script
//   1. hooks three.js through its devtools hook (`__THREE_DEVTOOLS__`, which every three.js
//      Scene and WebGLRenderer announces itself to), so it knows each view's renderer and the
//      scene and camera the view last rendered into its render target;
//   2. replaces `OffscreenCanvas.convertToBlob` for those renderers' canvases: instead of a
//      JPEG it returns the raw RGBA pixels of the frame the client just drew (readPixels, no
//      encoding), and, when the page asks for them, the depth and instance-mask passes,
//      drawn in the same render as the colour (see "one render for every pass" below);
//   3. keeps the state of every asset request (fetch, XHR, images) and every uncaught error,
//      so the worker can tell when the models of a scene have loaded or failed.
// The worker decodes the payload in raycollect/render/capture.py; the format is written there.
(() => {
  "use strict";
  const params = new URLSearchParams(window.location.search);
  const PASSES = (params.get("rc_passes") || "").split(",").filter(Boolean);
  // The passes drawn as outputs of the view's own render (one render for every pass), each
  // at its colour attachment; amodal silhouettes are a pass of their own ("amodal" below).
  const ATTACHMENT = {depth: 1, mask: 2, normals: 3, coords: 4};
  const FLOAT_PASSES = new Set(["normals", "coords"]); // float32 x 3 a pixel, not 8-bit
  const IMAGE_PASSES = PASSES.filter((p) => p in ATTACHMENT);
  const AMODAL = PASSES.includes("amodal");
  const MAGIC = [0x52, 0x43, 0x46, 0x31]; // "RCF1"
  const NO_BLENDING = 0; // three.js NoBlending
  const MARKER_PIXELS = 64; // the revision marker's view is 8x8; job views are larger
  const renderers = new Map(); // canvas -> WebGLRenderer
  const lastScene = new WeakMap(); // renderer -> {scene, camera} of its last render to a target
  const passMaterials = new WeakMap(); // original material -> {depth, masks: Map(id -> clone)}
  const depthUniforms = {rcFar: {value: 1.0}};

  // --- three.js objects, through the devtools hook ---------------------------------------
  const hook = new EventTarget();
  hook.addEventListener("observe", (event) => {
    const obj = event.detail;
    if (obj && obj.isWebGLRenderer) wrapRenderer(obj);
  });
  window.__THREE_DEVTOOLS__ = hook;

  function wrapRenderer(r) {
    renderers.set(r.domElement, r);
    const render = r.render;
    r.render = function (scene, camera) {
      if (this.domElement instanceof OffscreenCanvas) instrument(this).serial += 1;
      // A view renders the scene into its render target, then copies that to its canvas
      // with a quad: the render into a target is the one that shows the job.
      const target = this.getRenderTarget();
      if (scene && scene.isScene && camera && target !== null) {
        const c = this.domElement;
        // Only a view's own renderer (on an OffscreenCanvas) counts. On a grab the page's
        // main renderer first renders the scene into the same target object too (in its
        // own context, for the view's image plane on the main canvas, which this page
        // never draws): a second render of the scene per grab that nothing reads, skipped.
        if (!(c instanceof OffscreenCanvas)) {
          if (viewTargets.has(target)) return undefined;
          return render.call(this, scene, camera);
        }
        viewTargets.add(target);
        lastScene.set(this, {scene, camera});
        if (c.width * c.height > MARKER_PIXELS) {
          applyViewState(this, scene);
          timing.set(this, performance.now());
          if (IMAGE_PASSES.length) {
            const plan = mrtPlan(this, scene);
            if (plan.ok) return renderMRT(this, render, scene, camera, plan);
            mrtFrames.delete(this);
            fallbacks.set(this, plan.why);
          }
        }
      }
      return render.call(this, scene, camera);
    };
  }
  const timing = new WeakMap(); // renderer -> performance.now() when its job view's render began
  const viewTargets = new WeakSet(); // render targets the views render into

  // --- per-view state ---------------------------------------------------------------------
  // Jobs that differ only in joint values share one scene update: the worker sends each
  // job's joint values in an update, in the userData of a group of its own
  // ({rcStates: {rev, jobs: [{robot key: {joint: value}}, ...]}}), and grabs the views in
  // order. Before the n-th job view of that update renders, its joints are set; once the
  // frame, its passes and its labels are taken they are set back to what React gave the
  // robot. The header names the state a frame shows (`state`), which the worker checks.
  let stateRev = null;
  let stateNext = 0;
  const applied = new Map(); // renderer -> {index, restore}

  function applyViewState(r, scene) {
    try {
      setViewState(r, scene);
    } catch (e) {  // reported with the frame (header.error), which the worker retries
      applied.set(r, {index: -1, error: String(e && e.message ? e.message : e), restore() {}});
    }
  }

  function setViewState(r, scene) {
    let carrier = null;
    const groups = {};
    scene.traverse((o) => {
      const ud = o.userData;
      if (!ud) return;
      if (ud.rcStates) carrier = ud.rcStates;
      if (ud.rcKey !== undefined && ud.rcId !== undefined) groups[ud.rcKey] = o;
    });
    if (!carrier) return;
    if (carrier.rev !== stateRev) { stateRev = carrier.rev; stateNext = 0; }
    const index = stateNext++;
    const job = carrier.jobs[index];
    const undo = [];
    if (job) {
      for (const key in job) {
        let robot = null;
        if (groups[key]) groups[key].traverse((o) => { if (!robot && o.isURDFRobot) robot = o; });
        if (!robot) throw new Error(`no robot ${key} on the page for view state ${index}`);
        for (const name in job[key]) {
          const joint = robot.joints[name];
          if (!joint) continue;
          undo.push([joint, joint.jointValue.slice()]);
          joint.setJointValue(job[key][name]);
        }
      }
    }
    applied.set(r, {index, restore() { for (const [j, v] of undo.reverse()) j.setJointValue(...v); }});
  }

  // --- asset loads and errors ---------------------------------------------------------------
  // Only this page's own server counts (the assets folder): the client also asks CDNs for
  // fonts, which fail offline and do not matter.
  const loads = {started: 0, finished: 0, failures: 0, failed: []};
  let errorCount = 0;
  const errors = [];
  const MAX_KEPT = 20;
  function ours(url) {
    try { return new URL(url, window.location.href).origin === window.location.origin; }
    catch (e) { return false; }
  }
  function track(url, promise) {
    loads.started += 1;
    promise.then(() => { loads.finished += 1; }, (err) => {
      loads.finished += 1;
      loads.failures += 1;
      loads.failed.push(`${url}: ${err && err.message ? err.message : err}`);
      if (loads.failed.length > MAX_KEPT) loads.failed.shift();
    });
  }
  const fetch0 = window.fetch;
  window.fetch = function (input, init) {
    const url = typeof input === "string" ? input : (input && input.url) || String(input);
    const res = fetch0.call(this, input, init);
    // A load is over when its body has arrived, not when its headers have.
    if (ours(url)) {
      track(url, res.then((r) => {
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        return r.clone().arrayBuffer();
      }));
    }
    return res;
  };
  const open0 = XMLHttpRequest.prototype.open;
  const send0 = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.open = function (method, url, ...rest) {
    this.__rcUrl = String(url);
    return open0.call(this, method, url, ...rest);
  };
  XMLHttpRequest.prototype.send = function (...args) {
    const url = this.__rcUrl;
    if (ours(url)) {
      track(url, new Promise((resolve, reject) => {
        this.addEventListener("loadend", () => {
          if (this.status === 0 || this.status >= 400) reject(new Error(`HTTP ${this.status}`));
          else resolve();
        });
      }));
    }
    return send0.apply(this, args);
  };
  // Textures load through <img> elements (three.js ImageLoader).
  const imgSrc = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
  Object.defineProperty(HTMLImageElement.prototype, "src", {
    configurable: true, enumerable: imgSrc.enumerable,
    get() { return imgSrc.get.call(this); },
    set(value) {
      const url = String(value);
      if (ours(url) && !url.startsWith("data:") && !url.startsWith("blob:")) {
        track(url, new Promise((resolve, reject) => {
          this.addEventListener("load", () => resolve(), {once: true});
          this.addEventListener("error", () => reject(new Error("image did not load")), {once: true});
        }));
      }
      imgSrc.set.call(this, value);
    },
  });
  function noteError(text) {
    errorCount += 1;
    errors.push(String(text).slice(0, 500));
    if (errors.length > MAX_KEPT) errors.shift();
  }
  window.addEventListener("error", (e) => noteError(e.message || e.error));
  // three.js loaders catch a parser's exception and hand it to console.error when the
  // caller gave no onError (as the client's model components do): a corrupt file shows up
  // only there.
  // While one of raycollect's own passes renders, what three.js reports (a pass shader that
  // does not compile) is the page's error, never the scene's: it fails that grab, which is
  // retried, instead of being read later as a model that did not load.
  let passErrors = null;
  const consoleError0 = console.error;
  console.error = function (...args) {
    const first = args[0];
    const text = first && first.stack ? first.stack.split("\n")[0] : args.map(String).join(" ");
    if (passErrors) passErrors.push(String(text).slice(0, 500)); else noteError(text);
    return consoleError0.apply(this, args);
  };
  window.addEventListener("unhandledrejection", (e) => {
    const r = e.reason;
    noteError(r && r.stack ? r.stack.split("\n")[0] : r);
  });

  // What the models of the scene have: for every top-level element that loads something
  // (its wrapping group has userData.rcModel), how many drawable objects with vertices it
  // holds now, and how many textures anywhere still have no image.
  function sceneStatus(scene) {
    const models = {};
    let texturesPending = 0;
    (function visit(obj, key) {
      const ud = obj.userData;
      if (ud && ud.rcModel) { key = ud.rcKey; models[key] = 0; }
      // A URDF robot is loaded once it is parsed (its meshes' loads are tracked): one whose
      // links have no visual draws nothing, and must not be waited for.
      if (key !== null && obj.isURDFRobot) models[key] += 1;
      const pos = obj.geometry && obj.geometry.attributes && obj.geometry.attributes.position;
      if (key !== null && (obj.isMesh || obj.isPoints || obj.isLine) && pos && pos.count > 0) {
        models[key] += 1;
      }
      if (obj.material) {
        for (const m of [].concat(obj.material)) {
          for (const k in m) {
            const t = m[k];
            if (t && t.isTexture && !t.isRenderTargetTexture && !t.isDataTexture &&
                (t.image == null || t.image.complete === false || t.image.width === 0)) {
              texturesPending += 1;
            }
          }
        }
      }
      for (const child of obj.children) visit(child, key);
    })(scene, null);
    return {models, textures_pending: texturesPending};
  }

  function status(scene) {
    const out = {loads_pending: loads.started - loads.finished, load_failures: loads.failures,
                 failed: loads.failed.slice(), errors: errorCount, error_texts: errors.slice()};
    if (scene) Object.assign(out, sceneStatus(scene));
    return out;
  }

  // --- passes ----------------------------------------------------------------------------
  // Each pass renders the same scene and camera again with every material replaced by a
  // clone whose fragment shader ends by writing the pass's value. Clones keep everything
  // that moves or discards geometry (skinning, morphs, point size, alpha test, sides), and
  // write exactly: no blending, no tone mapping, no colour conversion (the value is written
  // after all of that), and the view's context has no antialiasing.
  // The tails are written for every kind of material: three.js's own (GLSL ES 3.00 behind
  // its defines), a ShaderMaterial with glslVersion GLSL3 (which declares its own output and
  // has no gl_FragColor) and a RawShaderMaterial in either version (no defines at all). The
  // depth code uses float arithmetic only, exact for integers below 2^24, so it also compiles
  // as GLSL ES 1.00.
  const DEPTH_TAIL = (out) => `
  highp float rcZ = clamp(vRcW / rcFar, 0.0, 1.0);
  highp float rcQ = floor(rcZ * 16777215.0 + 0.5);
  highp float rcR = floor(rcQ / 65536.0);
  highp float rcG = floor((rcQ - rcR * 65536.0) / 256.0);
  highp float rcB = rcQ - rcR * 65536.0 - rcG * 256.0;
  ${out} = vec4(rcR, rcG, rcB, 255.0) / 255.0;
}`;
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

  // The scene as the passes see it: every visible object that has a material, with the
  // instance id its pixels carry and the object whose frame its object coordinates are in.
  // An element's group (userData.rcId) gives its meshes the element's id and frame (the
  // element's own object, the group's first child, whose pose the labels report); with
  // masks="links" a URDF link's meshes (its visuals, below it up to the next link) carry the
  // link's own id and frame. So a pixel's id says which frame its coordinates are in.
  function walk(scene, visit) {
    (function down(obj, id, links, frame) {
      if (!obj.visible) return;
      const ud = obj.userData;
      if (ud && ud.rcId !== undefined) {
        id = ud.rcId;
        links = ud.rcLinks || null;
        frame = obj.children[0] || obj;
      }
      if (links && obj.isURDFLink) {
        // The robot object is its root link too, but named after the robot.
        let name = obj.name;
        if (obj.isURDFRobot) for (const n in obj.links) if (obj.links[n] === obj) name = n;
        if (links[name] !== undefined) { id = links[name]; frame = obj; }
      }
      if (obj.material) visit(obj, id, frame);
      for (const child of obj.children) down(child, id, links, frame);
    })(scene, 0, null, scene);
  }

  function idColour(id) {
    return [id & 255, (id >> 8) & 255, (id >> 16) & 255].map((v) => v / 255);
  }

  function swapMaterials(scene, pass) {
    const swapped = [];
    walk(scene, (obj, id) => {
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

  // --- one render for every pass (WebGL2 multiple render targets) --------------------------
  // The view's own render of the scene (the client's, into its render target) also writes
  // the depth and instance-id values, to two more colour attachments of that target: every
  // material of the scene is patched (in place, once) to declare two more outputs
  // (locations 1 and 2) and write them after everything else, like the separate passes'
  // tails below. A patched program writes them only while its draw buffers say so: during
  // a job view's render this script turns the target's draw buffers on for patched
  // programs only, so whatever else three.js draws into the target (a clear, a background
  // mesh) leaves depth and ids at 0. The instance id and the far plane are uniforms that
  // three.js does not know about, set right before each draw for the object being drawn.
  // Outputs beyond a framebuffer's draw buffers are discarded, so the patched programs
  // draw as before everywhere else.
  // A scene that holds a material this cannot draw exactly in one render (a GLSL ES 1.00
  // raw shader, which has no second output; one that does not write depth or colour, or
  // blends other than normally without per-buffer blending) takes the separate passes for
  // that frame; the header says which (`page.mode`).
  const A0 = 0x8CE0; // COLOR_ATTACHMENT0
  const MRT_MARK = "rcMrtDepth";
  const patched = new WeakMap(); // material -> {own: the user's onBeforeCompile or null}
  const contexts = new WeakMap(); // gl -> its draw-call state (instrument())
  const mrtFrames = new Map(); // renderer -> {fb, ...} of its last job view, drawn with MRT
  const fallbacks = new Map(); // renderer -> why its last job view took the separate passes
  const NORMAL_BLENDING = 1;

  function ownHook(m) {
    const p = patched.get(m);
    if (p) return p.own;
    return Object.prototype.hasOwnProperty.call(m, "onBeforeCompile") ? m.onBeforeCompile : null;
  }

  // three.js's own shaders (by their ShaderLib id): their vertex shader has `transformed`
  // (the vertex after morphs and skinning, in the model frame) and `mvPosition` (in the
  // camera frame, after instancing); the lit ones' fragment shader has `normal`, the
  // shading normal in the camera frame after normal and bump maps, facing the viewer.
  const BUILTIN = new Set(["basic", "lambert", "phong", "standard", "physical", "toon",
                           "normal", "matcap", "points", "dashed"]);
  const LIT = new Set(["lambert", "phong", "standard", "physical", "toon", "normal", "matcap"]);

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
      frag.replace(/\}\s*$/, DEPTH_TAIL(MRT_MARK).replace(/\}$/, "") +
                   MASK_TAIL("rcMrtMask").replace(/\}$/, "") + sf.body + "\n}");
  }

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
    let why = scene.overrideMaterial ? "an override material" : null;
    walk(scene, (obj, id, frame) => {
      ids.set(obj, idColour(id));
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
    return {ok: !why, why, ids, frames, materials, target};
  }

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

  // The attachments beyond the colour one: depth and ids (RGBA8, always attached, since
  // every patched program writes both), normals and coords (RGBA32F) when asked for.
  const NONE = 0;
  const EXTRA = [1, 2, ...["normals", "coords"].filter((p) => IMAGE_PASSES.includes(p))
                                              .map((p) => ATTACHMENT[p])];
  const WIDE = [A0, ...[1, 2, 3, 4].map((i) => (EXTRA.includes(i) ? A0 + i : NONE))]
    .slice(0, Math.max(...EXTRA) + 1);
  const NARROW = WIDE.map((b, i) => (i === 0 ? A0 : NONE));
  const RGBA8 = 0x8058, RGBA32F = 0x8814;

  function drawBuffers(st, wide) {
    st.gl.drawBuffers(wide ? WIDE : NARROW);
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
  const ZERO_ID = [0, 0, 0];

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
    mrtFrames.set(r, {fb, w, h});
    fallbacks.delete(r);
    return out;
  }

  // The attachments of a view's last MRT render, in the order of IMAGE_PASSES.
  function readMRT(r, frame) {
    const gl = r.getContext();
    const prev = gl.getParameter(gl.READ_FRAMEBUFFER_BINDING);
    gl.bindFramebuffer(gl.READ_FRAMEBUFFER, frame.fb);
    try {
      return IMAGE_PASSES.map((pass) => {
        gl.readBuffer(A0 + ATTACHMENT[pass]);
        const n = frame.w * frame.h * 4;
        const float = FLOAT_PASSES.has(pass);
        const px = float ? new Float32Array(n) : new Uint8Array(n);
        gl.readPixels(0, 0, frame.w, frame.h, gl.RGBA, float ? gl.FLOAT : gl.UNSIGNED_BYTE, px);
        return px;
      });
    } finally {
      gl.readBuffer(A0);
      gl.bindFramebuffer(gl.READ_FRAMEBUFFER, prev);
    }
  }


  // --- amodal silhouettes ----------------------------------------------------------------
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
  const SILHOUETTE_VS = `#version 300 es
in highp vec3 position;
uniform highp mat4 uMV;
uniform highp mat4 uP;
void main() { gl_Position = uP * (uMV * vec4(position, 1.0)); }`;
  const SILHOUETTE_FS = `#version 300 es
precision highp float;
precision highp int;
uniform int uSlot;
${OUTS.map((i) => `layout(location = ${i}) out vec4 o${i};`).join("\n")}
void main() {
  int a = uSlot / 4;
  int c = uSlot - a * 4;
  vec4 v = vec4(equal(ivec4(c), ivec4(0, 1, 2, 3)));
${OUTS.map((i) => `  o${i} = a == ${i} ? v : vec4(0.0);`).join("\n")}
}`;
  const PACK_VS = `#version 300 es
void main() {
  vec2 p = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));
  gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}`;
  const PACK_FS = `#version 300 es
precision highp float;
precision highp int;
uniform int uW;
${OUTS.map((i) => `uniform highp sampler2D t${i};\nlayout(location = ${i}) out vec4 p${i};`).join("\n")}
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
${OUTS.map((i) => `  p${i} = pack(t${i}, q);`).join("\n")}
}`;

  function silhouetteState(gl) {
    let s = silhouettes.get(gl);
    if (s) return s;
    const draw = program(gl, SILHOUETTE_VS, SILHOUETTE_FS);
    const pack = program(gl, PACK_VS, PACK_FS);
    s = {draw, pack, vao: gl.createVertexArray(), emptyVao: gl.createVertexArray(),
         position: gl.getAttribLocation(draw, "position"),
         uMV: gl.getUniformLocation(draw, "uMV"), uP: gl.getUniformLocation(draw, "uP"),
         uSlot: gl.getUniformLocation(draw, "uSlot"), uW: gl.getUniformLocation(pack, "uW"),
         samplers: OUTS.map((i) => gl.getUniformLocation(pack, `t${i}`)),
         buffers: new WeakMap(), targets: new Map()};
    silhouettes.set(gl, s);
    return s;
  }

  // A framebuffer with `n` RGBA8 textures of w x h, kept for the next frame of that size.
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
    t = {fb, textures, w, h, n};
    s.targets.set(key, t);
    return t;
  }

  // Draw into all `n` textures of a target, the whole of each.
  function bindTarget(gl, s, name, w, h, n) {
    const t = target(gl, s, name, w, h, n);
    gl.bindFramebuffer(gl.FRAMEBUFFER, t.fb);
    gl.drawBuffers(OUTS.slice(0, n).map((i) => A0 + i));
    gl.viewport(0, 0, w, h);
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

  function drawSilhouette(gl, s, obj, camera) {
    const geo = obj.geometry;
    const pos = geo && geo.attributes && geo.attributes.position;
    if (!pos || pos.count === 0 || pos.itemSize < 3) return;
    gl.bindBuffer(gl.ARRAY_BUFFER, glBuffer(gl, s, pos, gl.ARRAY_BUFFER));
    const inter = pos.isInterleavedBufferAttribute;
    const bytes = pos.array ? pos.array.BYTES_PER_ELEMENT : (inter ? pos.data.array.BYTES_PER_ELEMENT : 4);
    const type = {1: gl.BYTE, 2: gl.SHORT, 4: gl.FLOAT}[bytes] || gl.FLOAT;
    gl.enableVertexAttribArray(s.position);
    gl.vertexAttribPointer(s.position, 3, type, !!pos.normalized,
                           inter ? pos.data.stride * bytes : 0, inter ? pos.offset * bytes : 0);
    const mv = obj.modelViewMatrix.clone().multiplyMatrices(camera.matrixWorldInverse, obj.matrixWorld);
    gl.uniformMatrix4fv(s.uMV, false, new Float32Array(mv.elements));
    const m = [].concat(obj.material)[0];
    const side = m ? m.side : 0; // three.js FrontSide 0, BackSide 1, DoubleSide 2
    if (side === 2) gl.disable(gl.CULL_FACE);
    else {
      gl.enable(gl.CULL_FACE);
      gl.cullFace(gl.BACK);
      gl.frontFace((side === 1) !== (obj.matrixWorld.determinant() < 0) ? gl.CW : gl.CCW);
    }
    const range = geo.drawRange;
    if (geo.index) {
      const idx = geo.index;
      gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, glBuffer(gl, s, idx, gl.ELEMENT_ARRAY_BUFFER));
      const start = Math.max(0, range.start);
      const count = Math.min(idx.count - start, range.count);
      const wide = idx.array.BYTES_PER_ELEMENT === 4;
      gl.drawElements(gl.TRIANGLES, count, wide ? gl.UNSIGNED_INT : gl.UNSIGNED_SHORT,
                      start * idx.array.BYTES_PER_ELEMENT);
    } else {
      const start = Math.max(0, range.start);
      gl.drawArrays(gl.TRIANGLES, start, Math.min(pos.count - start, range.count));
    }
  }

  // One silhouette render of up to SLOTS ids and its packing: {ids, data} where data holds
  // ceil(n / 4) planes, each H rows (bottom-up) of ceil(W / 8) RGBA pixels: channel c of
  // plane a holds id a * 4 + c, bit b of byte x the pixel x * 8 + b.
  function silhouetteRender(gl, s, meshes, ids, camera, w, h, scale) {
    const n = Math.ceil(ids.length / 4);
    const slot = new Map(ids.map((id, i) => [id, i]));
    const draw = bindTarget(gl, s, "draw", w, h, n);
    gl.disable(gl.SCISSOR_TEST);
    gl.disable(gl.DEPTH_TEST);
    gl.disable(gl.STENCIL_TEST);
    gl.depthMask(false);
    gl.colorMask(true, true, true, true);
    for (let i = 0; i < n; i++) gl.clearBufferfv(gl.COLOR, i, [0, 0, 0, 0]);
    gl.enable(gl.BLEND);
    gl.blendEquation(gl.FUNC_ADD);
    gl.blendFunc(gl.ONE, gl.ONE);
    gl.useProgram(s.draw);
    gl.bindVertexArray(s.vao);
    const p = camera.projectionMatrix.elements.slice();
    for (const i of [0, 4, 8, 12, 1, 5, 9, 13]) p[i] /= scale; // x and y rows: a wider view
    gl.uniformMatrix4fv(s.uP, false, new Float32Array(p));
    for (const [obj, id] of meshes) {
      if (!slot.has(id)) continue;
      gl.uniform1i(s.uSlot, slot.get(id));
      drawSilhouette(gl, s, obj, camera);
    }
    gl.disable(gl.BLEND);
    gl.disable(gl.CULL_FACE);
    // Pack: 8 pixels of each channel into a byte.
    const w8 = Math.ceil(w / 8);
    bindTarget(gl, s, "pack", w8, h, n);
    gl.useProgram(s.pack);
    gl.bindVertexArray(s.emptyVao);
    gl.uniform1i(s.uW, w);
    for (const i of OUTS) {
      gl.activeTexture(gl.TEXTURE0 + i);
      gl.bindTexture(gl.TEXTURE_2D, draw.textures[Math.min(i, n - 1)]);
      gl.uniform1i(s.samplers[i], i);
    }
    gl.drawArrays(gl.TRIANGLES, 0, 3);
    const data = new Uint8Array(n * w8 * h * 4);
    for (let i = 0; i < n; i++) {
      gl.readBuffer(A0 + i);
      gl.readPixels(0, 0, w8, h, gl.RGBA, gl.UNSIGNED_BYTE, data.subarray(i * w8 * h * 4, (i + 1) * w8 * h * 4));
    }
    return {ids, data, w, h};
  }

  // The ids of a packed render whose silhouette reaches the image's outermost pixels.
  function touchingBorder(block) {
    const {ids, data, w, h} = block;
    const w8 = Math.ceil(w / 8);
    const plane = w8 * h * 4;
    const lastBit = 1 << ((w - 1) % 8);
    return ids.filter((id, j) => {
      const base = Math.floor(j / 4) * plane + (j % 4);
      const at = (x8, y) => data[base + (y * w8 + x8) * 4];
      for (let x8 = 0; x8 < w8; x8++) if (at(x8, 0) || at(x8, h - 1)) return true;
      for (let y = 0; y < h; y++) if ((at(0, y) & 1) || (at(w8 - 1, y) & lastBit)) return true;
      return false;
    });
  }

  function amodal(r, scene, camera, w, h) {
    const gl = r.getContext();
    const s = silhouetteState(gl);
    const meshes = [];
    const seen = new Set();
    walk(scene, (obj, id) => {
      if (!id || !obj.isMesh) return;
      if (![].concat(obj.material).some((m) => m.visible)) return;
      meshes.push([obj, id]);
      seen.add(id);
    });
    const all = [...seen].sort((a, b) => a - b);
    const blocks = [];
    const groups = (ids) => [...Array(Math.ceil(ids.length / SLOTS)).keys()]
      .map((g) => ids.slice(g * SLOTS, (g + 1) * SLOTS));
    try {
      for (const ids of groups(all)) {
        const inner = silhouetteRender(gl, s, meshes, ids, camera, w, h, 1);
        blocks.push(["amodal", inner]);
        const cut = touchingBorder(inner);
        for (const part of groups(cut)) {
          blocks.push(["amodal_outer", silhouetteRender(gl, s, meshes, part, camera, w * EXTEND, h * EXTEND, EXTEND)]);
        }
      }
    } finally {
      // three.js caches the GL state it set: make it set everything again.
      r.resetState();
    }
    return blocks;
  }

  // --- labels ----------------------------------------------------------------------------
  // What the page rendered, read from three.js after the render: for every element that has
  // an instance id (its group's userData.rcId), the world matrix of the element's own object
  // (the group's first child) and, for a URDF robot, the world matrix of every link frame.
  // Matrices are column-major (three.js order) and in the user's world: relative to the group
  // that holds the scene (userData.rcWorld), which turns a Z-up world into three.js's Y-up.
  function labels(scene) {
    let world = null;
    const found = [];
    (function visit(obj) {
      const ud = obj.userData;
      if (ud && ud.rcWorld) world = obj;
      if (ud && ud.rcId) { found.push(obj); return; }
      for (const child of obj.children) visit(child);
    })(scene);
    const inv = world ? world.matrixWorld.clone().invert() : null;
    const rel = (obj) => {
      const m = obj.matrixWorld.clone();
      return Array.from((inv ? m.premultiply(inv) : m).elements);
    };
    const out = {};
    for (const group of found) {
      const el = group.children[0];
      const rec = {pose: el ? rel(el) : null};
      let robot = null;
      if (el) el.traverse((o) => { if (!robot && o.isURDFRobot) robot = o; });
      if (robot) {
        rec.links = {};
        for (const name in robot.links) rec.links[name] = rel(robot.links[name]);
      }
      out[group.userData.rcKey] = rec;
    }
    return out;
  }

  // The payload, in one buffer: each image pass's RGBA read back as R, G, B (alpha carries
  // nothing), a quarter fewer bytes through the socket: 8-bit passes a byte a channel,
  // float passes (normals, coords) 4 little-endian bytes; then the amodal blocks as packed.
  // The header's `blocks` says what follows, in order. The client only asks the "blob"
  // for its arrayBuffer(): handing it the buffer itself spares Chromium copying every
  // frame into its blob store and back.
  function payload(header, images, extra) {
    header.channels = 3;
    header.blocks = [];
    let size = 0;
    for (const [name, px] of images) {
      const bytes = (px.length / 4) * 3 * px.BYTES_PER_ELEMENT;
      header.blocks.push({name, type: px instanceof Float32Array ? "f32x3" : "u8x3", bytes});
      size += bytes;
    }
    for (const [name, b] of extra) {
      header.blocks.push({name, type: "bits", bytes: b.data.length, w: b.w, h: b.h, ids: b.ids});
      size += b.data.length;
    }
    const json = new TextEncoder().encode(JSON.stringify(header));
    const out = new Uint8Array(8 + json.length + size);
    out.set(MAGIC, 0);
    new DataView(out.buffer).setUint32(4, json.length, true);
    out.set(json, 8);
    let j = 8 + json.length;
    for (const [, px] of images) {
      if (px instanceof Float32Array) {
        // Through an aligned copy: the block's offset in the payload need not be a multiple
        // of 4, which a Float32Array view on it must be.
        const f = new Float32Array((px.length / 4) * 3);
        for (let i = 0, k = 0; i < px.length; i += 4, k += 3) {
          f[k] = px[i]; f[k + 1] = px[i + 1]; f[k + 2] = px[i + 2];
        }
        out.set(new Uint8Array(f.buffer), j);
        j += f.byteLength;
      } else {
        for (let i = 0; i < px.length; i += 4, j += 3) {
          out[j] = px[i]; out[j + 1] = px[i + 1]; out[j + 2] = px[i + 2];
        }
      }
    }
    for (const [, b] of extra) { out.set(b.data, j); j += b.data.length; }
    return {size: out.length, type: "application/x-raycollect-frame",
            arrayBuffer: () => Promise.resolve(out.buffer)};
  }

  const toBlob0 = OffscreenCanvas.prototype.convertToBlob;
  OffscreenCanvas.prototype.convertToBlob = function (options) {
    const r = renderers.get(this);
    if (!r) return toBlob0.call(this, options);
    const w = this.width, h = this.height;
    const last = lastScene.get(r);
    // The 8x8 revision-marker view needs no passes; it reports the scene's models instead.
    const marker = w * h <= MARKER_PIXELS;
    const header = {w, h, passes: ["rgb"], status: status(marker && last ? last.scene : null)};
    const buffers = []; // [pass, pixels] of the image passes
    let extra = []; // [name, packed block] of the amodal pass
    try {
      const t0 = performance.now();
      r.setRenderTarget(null);
      // What the client just drew: the frame (as the client read it, when it did).
      const st = instrument(r);
      const read = st.canvasRead;
      st.canvasRead = null;
      buffers.push(["rgb", read && read.serial === st.serial && read.w === w && read.h === h
        ? read.px : readRGBA(r, w, h)]);
      if (last && PASSES.length && !marker) {
        const frame = mrtFrames.get(r);
        const mrt = frame && frame.w === w && frame.h === h;
        header.page = {mode: mrt ? "mrt" : "separate"};
        if (!mrt && fallbacks.get(r)) header.page.why = fallbacks.get(r);
        if (mrt) {
          const px = readMRT(r, frame);
          IMAGE_PASSES.forEach((pass, i) => buffers.push([pass, px[i]]));
        } else {
          const surface = IMAGE_PASSES.filter((p) => FLOAT_PASSES.has(p));
          if (surface.length) {
            throw new Error(`${surface.join(" and ")} are drawn only in the one render, which ` +
                            `this scene cannot take: ${fallbacks.get(r) || "no render of its own"}`);
          }
          for (const pass of IMAGE_PASSES) buffers.push([pass, renderPass(r, last.scene, last.camera, pass, w, h)]);
        }
        if (AMODAL) extra = amodal(r, last.scene, last.camera, w, h);
        header.passes.push(...IMAGE_PASSES);
        if (PASSES.includes("mask")) header.objects = labels(last.scene);
      }
      if (!marker && timing.has(r)) {
        // The render's GPU work happens in the readbacks (WebGL runs behind the calls).
        header.page = Object.assign(header.page || {}, {
          draw_ms: t0 - timing.get(r), read_ms: performance.now() - t0});
        timing.delete(r);
      }
    } catch (e) {
      header.error = `capture failed: ${e && e.stack ? e.stack.split("\n").slice(0, 3).join(" | ") : e}`;
      buffers.length = 0;
      extra = [];
      header.passes = [];
    } finally {
      const state = applied.get(r);
      if (state) {
        applied.delete(r);
        header.state = state.index;
        if (state.error) header.error = `view state: ${state.error}`;
        state.restore();
      }
    }
    try {
      return Promise.resolve(payload(header, buffers, extra));
    } catch (e) {  // an answer that says so, never a grab left unanswered
      header.error = `capture failed: ${e && e.stack ? e.stack.split("\n").slice(0, 3).join(" | ") : e}`;
      return Promise.resolve(payload(header, [], []));
    }
  };
})();
