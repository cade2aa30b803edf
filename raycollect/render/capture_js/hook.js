// The hook: three.js objects, through the devtools hook. Every WebGLRenderer announces
// itself there; each view's render is wrapped so the job view's state (view_state.js) and
// the one render of every pass (mrt.js) happen in it.
const renderers = new Map(); // canvas -> WebGLRenderer
const lastScene = new WeakMap(); // renderer -> {scene, camera} of its last render to a target
const timing = new WeakMap(); // renderer -> performance.now() when its job view's render began
const viewTargets = new WeakSet(); // render targets the views render into

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
      applySkybox(scene, target);
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
