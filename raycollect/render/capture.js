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
          if (PASSES.length) {
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
        if (key === POSES_KEY) { setPoses(job[key], groups, undo, index); continue; }
        let robot = null;
        if (groups[key]) groups[key].traverse((o) => { if (!robot && o.isURDFRobot) robot = o; });
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
  const POSES_KEY = "rc-poses";
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
    const rgb = [id & 255, (id >> 8) & 255, (id >> 16) & 255].map((v) => v / 255);
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
    (function visit(obj, id, links) {
      const ud = obj.userData;
      if (ud && ud.rcId !== undefined) { id = ud.rcId; links = ud.rcLinks || null; }
      // masks="links": a URDF link's meshes (its visuals, below it up to the next link)
      // carry the link's own id.
      if (links && obj.isURDFLink) {
        // The robot object is its root link too, but named after the robot.
        let name = obj.name;
        if (obj.isURDFRobot) for (const n in obj.links) if (obj.links[n] === obj) name = n;
        if (links[name] !== undefined) id = links[name];
      }
      if (obj.material && obj.visible) {
        const orig = obj.material;
        obj.material = Array.isArray(orig) ? orig.map((m) => passMaterial(m, pass, id))
          : passMaterial(orig, pass, id);
        swapped.push([obj, orig]);
      }
      for (const child of obj.children) visit(child, id, links);
    })(scene, 0, null);
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

  function mrtShader(shader) {
    const d = dialect(shader);
    shader.vertexShader = `${d.vout} highp float vRcW;\n` +
      shader.vertexShader.replace(/\}\s*$/, "\n  vRcW = gl_Position.w;\n}");
    let frag = shader.fragmentShader;
    // Once there is more than one output, each needs its location.
    if (d.out !== "gl_FragColor") frag = frag.replace(OUT_DECL, `layout(location = 0) out highp vec4 ${d.out};`);
    shader.fragmentShader = `${d.vin} highp float vRcW;\nuniform highp float rcFar;\n` +
      `uniform highp vec3 rcId;\nlayout(location = 1) out highp vec4 ${MRT_MARK};\n` +
      `layout(location = 2) out highp vec4 rcMrtMask;\n` +
      frag.replace(/\}\s*$/, DEPTH_TAIL(MRT_MARK).replace(/\}$/, "") + MASK_TAIL("rcMrtMask"));
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
    const materials = [];
    let why = scene.overrideMaterial ? "an override material" : null;
    (function visit(obj, id, links) {
      if (!obj.visible) return;
      const ud = obj.userData;
      if (ud && ud.rcId !== undefined) { id = ud.rcId; links = ud.rcLinks || null; }
      if (links && obj.isURDFLink) {  // as swapMaterials does
        let name = obj.name;
        if (obj.isURDFRobot) for (const n in obj.links) if (obj.links[n] === obj) name = n;
        if (links[name] !== undefined) id = links[name];
      }
      if (obj.material) {
        ids.set(obj, [id & 255, (id >> 8) & 255, (id >> 16) & 255].map((v) => v / 255));
        for (const m of [].concat(obj.material)) {
          if (!m.visible) continue;
          const blocker = mrtBlocker(m, st.indexed);
          if (blocker && !why) why = `${blocker} (${m.type} of ${obj.type} ${obj.name || ""})`.trim();
          materials.push(m);
        }
      }
      for (const child of obj.children) visit(child, id, links);
    })(scene, 0, null);
    const target = r.getRenderTarget();
    const c = r.domElement;
    if (!why && (target.width !== c.width || target.height !== c.height)) {
      why = "a render target of another size than its canvas";
    }
    return {ok: !why, why, ids, materials, target};
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

  function drawBuffers(st, wide) {
    const gl = st.gl;
    gl.drawBuffers(wide ? [A0, A0 + 1, A0 + 2] : [A0, gl.NONE, gl.NONE]);
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
    // Blending is for the colour; ids and depth are written as they are.
    if (st.blend && st.indexed) {
      st.indexed.disableiOES(gl.BLEND, 1);
      st.indexed.disableiOES(gl.BLEND, 2);
    }
  }
  const ZERO_ID = [0, 0, 0];

  // Two RGBA8 renderbuffers at attachments 1 and 2 of the view target's framebuffer, made
  // again when three.js makes a new framebuffer (a resized target).
  function attach(st, fb, w, h) {
    const gl = st.gl;
    if (st.attached && st.attached.fb === fb && st.attached.w === w && st.attached.h === h) return;
    if (st.attached) st.attached.rbs.forEach((rb) => gl.deleteRenderbuffer(rb));
    const rbs = [1, 2].map((i) => {
      const rb = gl.createRenderbuffer();
      gl.bindRenderbuffer(gl.RENDERBUFFER, rb);
      gl.renderbufferStorage(gl.RENDERBUFFER, gl.RGBA8, w, h);
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
    gl.clearBufferfv(gl.COLOR, 1, [0, 0, 0, 0]);
    gl.clearBufferfv(gl.COLOR, 2, [0, 0, 0, 0]);
    drawBuffers(st, false);
    st.active = {fb, ids: plan.ids, far: camera.far};
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

  // The id and depth attachments of a view's last MRT render, in the order of PASSES.
  function readMRT(r, frame) {
    const gl = r.getContext();
    const prev = gl.getParameter(gl.READ_FRAMEBUFFER_BINDING);
    gl.bindFramebuffer(gl.READ_FRAMEBUFFER, frame.fb);
    try {
      return PASSES.map((pass) => {
        gl.readBuffer(A0 + (pass === "depth" ? 1 : 2));
        const px = new Uint8Array(frame.w * frame.h * 4);
        gl.readPixels(0, 0, frame.w, frame.h, gl.RGBA, gl.UNSIGNED_BYTE, px);
        return px;
      });
    } finally {
      gl.readBuffer(A0);
      gl.bindFramebuffer(gl.READ_FRAMEBUFFER, prev);
    }
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

  // The payload, in one buffer: each pass's RGBA read back as R, G, B (alpha carries
  // nothing), a quarter fewer bytes through the socket. The client only asks the "blob"
  // for its arrayBuffer(): handing it the buffer itself spares Chromium copying every
  // frame into its blob store and back.
  function payload(header, buffers) {
    header.channels = 3;
    const json = new TextEncoder().encode(JSON.stringify(header));
    const size = buffers.reduce((n, b) => n + (b.length / 4) * 3, 0);
    const out = new Uint8Array(8 + json.length + size);
    out.set(MAGIC, 0);
    new DataView(out.buffer).setUint32(4, json.length, true);
    out.set(json, 8);
    let j = 8 + json.length;
    for (const b of buffers) {
      for (let i = 0; i < b.length; i += 4, j += 3) {
        out[j] = b[i]; out[j + 1] = b[i + 1]; out[j + 2] = b[i + 2];
      }
    }
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
    const buffers = [];
    try {
      const t0 = performance.now();
      r.setRenderTarget(null);
      // What the client just drew: the frame (as the client read it, when it did).
      const st = instrument(r);
      const read = st.canvasRead;
      st.canvasRead = null;
      buffers.push(read && read.serial === st.serial && read.w === w && read.h === h
        ? read.px : readRGBA(r, w, h));
      if (last && PASSES.length && !marker) {
        const frame = mrtFrames.get(r);
        const mrt = frame && frame.w === w && frame.h === h;
        header.page = {mode: mrt ? "mrt" : "separate"};
        if (!mrt && fallbacks.get(r)) header.page.why = fallbacks.get(r);
        if (mrt) buffers.push(...readMRT(r, frame));
        else for (const pass of PASSES) buffers.push(renderPass(r, last.scene, last.camera, pass, w, h));
        header.passes.push(...PASSES);
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
    return Promise.resolve(payload(header, buffers));
  };
})();
