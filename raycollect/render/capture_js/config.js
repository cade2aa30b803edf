// raycollect's capture script: served inlined at the top of the Vuer client's page by every
// render worker (raycollect/render/server.py), before the client's own modules run. The
// files of this folder are one classic script, concatenated in the order server.py lists
// (CAPTURE_PARTS) inside one function scope: each file's state is at its top, and what a
// file uses from another is declared in an earlier file or only called at run time.
//
// Why: the client answers a grab by encoding its canvas as a JPEG (lossy), and its depth
// pass writes 8-bit grey. This script
//   1. hooks three.js through its devtools hook (`__THREE_DEVTOOLS__`, which every three.js
//      Scene and WebGLRenderer announces itself to), so it knows each view's renderer and the
//      scene and camera the view last rendered into its render target (hook.js);
//   2. replaces `OffscreenCanvas.convertToBlob` for those renderers' canvases: instead of a
//      JPEG it returns the raw pixels of the frame the client just drew (readPixels, no
//      encoding), and, when the page asks for them, the depth and instance-mask passes,
//      drawn in the same render as the colour (mrt.js; grab.js answers);
//   3. sets a skybox's six images as the scene's background before a view renders
//      (skybox.js);
//   4. keeps the state of every asset request (fetch, XHR, images) and every uncaught error,
//      so the worker can tell when the models of a scene have loaded or failed (loads.js).
// The worker decodes the payload in raycollect/render/capture.py; the format is written there.
//
// This file: what the page was asked for, and the constants the others share.
const params = new URLSearchParams(window.location.search);
const PASSES = (params.get("rc_passes") || "").split(",").filter(Boolean);
// The passes drawn as outputs of the view's own render (one render for every pass), each
// at its colour attachment; amodal silhouettes are a pass of their own (amodal.js).
const ATTACHMENT = {depth: 1, mask: 2, normals: 3, coords: 4};
const FLOAT_PASSES = new Set(["normals", "coords"]); // float32 x 3 a pixel, not 8-bit
const IMAGE_PASSES = PASSES.filter((p) => p in ATTACHMENT);
const AMODAL = PASSES.includes("amodal");
// The worker's token for frames sent by HTTP POST instead of through the websocket
// (grab.js); none: every frame goes through the websocket.
const UPLOAD = params.get("rc_upload");
const MARKER_PIXELS = 64; // the revision marker's view is 8x8; job views are larger
const NO_BLENDING = 0; // three.js NoBlending
const NORMAL_BLENDING = 1; // three.js NormalBlending
const A0 = 0x8CE0; // COLOR_ATTACHMENT0
const RGBA8 = 0x8058, RGBA32F = 0x8814;

// An exception as one line for a frame's header.
function errorText(e) {
  return e && e.stack ? e.stack.split("\n").slice(0, 3).join(" | ") : String(e);
}
