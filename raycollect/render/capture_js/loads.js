// Asset loads and errors: what the worker waits on before it grabs a new scene's views.
// Only this page's own server counts (the assets folder): the client also asks CDNs for
// fonts, which fail offline and do not matter.
const loads = {started: 0, finished: 0, failures: 0, failed: []};
let errorCount = 0;
const errors = [];
const MAX_KEPT = 20;
// While one of raycollect's own passes renders (passes.js), what three.js reports (a pass
// shader that does not compile) is the page's error, never the scene's: it fails that grab,
// which is retried, instead of being read later as a model that did not load.
let passErrors = null;
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
// holds now (a skybox: 1 once the scene shows it), and how many textures anywhere still have
// no image.
function sceneStatus(scene) {
  const models = {};
  const skinsPending = new Set();
  let texturesPending = 0;
  walk(scene, (obj, at) => {
    const key = at.model ? at.key : null;
    if (key !== null && obj === at.group) models[key] = 0;
    // A URDF robot is loaded once it is parsed (its meshes' loads are tracked): one whose
    // links have no visual draws nothing, and must not be waited for.
    if (key !== null && obj.isURDFRobot) models[key] += 1;
    // A skinned element is loaded once its bones file is there too (skin.js).
    if (key !== null && obj.userData && obj.userData.rcSkin && !skinReady(obj)) skinsPending.add(key);
    // A skybox is loaded once the scene shows it (skybox.js).
    if (key !== null && obj.userData && obj.userData.rcSkybox &&
        skyboxShown(scene, obj.userData.rcSkybox)) models[key] += 1;
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
  }, true);
  for (const key of skinsPending) models[key] = 0;
  return {models, textures_pending: texturesPending};
}

function status(scene) {
  const out = {loads_pending: loads.started - loads.finished, load_failures: loads.failures,
               failed: loads.failed.slice(), errors: errorCount, error_texts: errors.slice()};
  if (scene) Object.assign(out, sceneStatus(scene));
  return out;
}
