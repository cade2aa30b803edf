// The grab: the client's convertToBlob of a view's canvas answered with raycollect's
// payload (raycollect/render/capture.py decodes it) instead of a JPEG.
const MAGIC = [0x52, 0x43, 0x46, 0x31]; // "RCF1"

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
    header.blocks.push({name, type: "bits", bytes: b.data.length, w: b.w, h: b.h, ids: b.ids,
                         x8: b.x8, y: b.y, cols: b.cols, rows: b.rows});
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
    header.error = `capture failed: ${errorText(e)}`;
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
    header.error = `capture failed: ${errorText(e)}`;
    return Promise.resolve(payload(header, [], []));
  }
};
