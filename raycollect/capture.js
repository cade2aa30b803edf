// raycollect's capture script: inlined at the top of the Vuer client's page by every render
// worker (raycollect/server.py), before the client's own modules run.
//
// Why: the client answers a grab by encoding its canvas as a JPEG (lossy), and its depth
// pass writes 8-bit grey. This script
//   1. hooks three.js through its devtools hook (`__THREE_DEVTOOLS__`, which every three.js
//      Scene and WebGLRenderer announces itself to), so it knows each view's renderer and the
//      scene and camera the view last rendered into its render target;
//   2. replaces `OffscreenCanvas.convertToBlob` for those renderers' canvases: instead of a
//      JPEG it returns the raw RGBA pixels of the frame the client just drew (readPixels, no
//      encoding), and, when the page asks for them, a depth pass and an instance-mask pass
//      rendered with the same scene and camera;
//   3. keeps the state of every asset request (fetch, XHR, images) and every uncaught error,
//      so the worker can tell when the models of a scene have loaded or failed.
// The worker decodes the payload in raycollect/capture.py; the format is written there.
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
      // A view renders the scene into its render target, then copies that to its canvas
      // with a quad: the render into a target is the one that shows the job.
      if (scene && scene.isScene && camera && this.getRenderTarget() !== null) {
        lastScene.set(this, {scene, camera});
        // Only a view's own renderer (on an OffscreenCanvas) counts: the page's main
        // renderer may render into the same target first, for marker grabs too.
        const c = this.domElement;
        if (c instanceof OffscreenCanvas && c.width * c.height > MARKER_PIXELS) {
          applyViewState(this, scene);
        }
      }
      return render.call(this, scene, camera);
    };
  }

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
    const rgb = [id & 255, (id >> 8) & 255, (id >> 16) & 255].map((v) => v / 255);
    const own = Object.prototype.hasOwnProperty.call(orig, "onBeforeCompile") ? orig.onBeforeCompile : null;
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

  function payload(header, buffers) {
    const json = new TextEncoder().encode(JSON.stringify(header));
    const head = new Uint8Array(8);
    head.set(MAGIC, 0);
    new DataView(head.buffer).setUint32(4, json.length, true);
    return new Blob([head, json, ...buffers]);
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
      r.setRenderTarget(null);
      buffers.push(readRGBA(r, w, h)); // what the client just drew: the frame
      if (last && PASSES.length && !marker) {
        for (const pass of PASSES) {
          buffers.push(renderPass(r, last.scene, last.camera, pass, w, h));
          header.passes.push(pass);
        }
        if (PASSES.includes("mask")) header.objects = labels(last.scene);
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
