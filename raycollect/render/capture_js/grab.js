// The grab: the client's convertToBlob of a view's canvas answered with raycollect's
// payload (raycollect/render/capture.py decodes it) instead of a JPEG.
const MAGIC = [0x52, 0x43, 0x46, 0x31]; // "RCF1"
// A job view's payload of at least this many bytes (server.py upload_min_bytes) is POSTed
// to the worker's own server, and the grab answered with its key: one request hands
// Chromium the whole buffer, where a websocket message leaves the page in pieces between
// the page's own work (the next view's render), which made it two to three times slower.
const UPLOAD_MIN_BYTES = Number(params.get("rc_upload_min") || 0);
const PAGE_NONCE = Math.random().toString(36).slice(2, 10); // keys stay unique across reloads
let uploads = 0;

// The payload, in one buffer: the header, padded with spaces so the blocks start at a
// multiple of 4 bytes, then the blocks [name, pixels, type] in order:
//   u8x3   an RGBA8 read-back as R, G, B (alpha carries nothing): 3 bytes a pixel
//   d24i8  an RGBA8 read-back as it is (mrt.js: 24-bit depth and the id's low byte)
//   f32x3  an RGBA32F read-back as R, G, B: 12 little-endian bytes a pixel
// then the amodal blocks as packed. The header's `blocks` says what follows. The client
// only asks the "blob" for its arrayBuffer(): handing it the buffer itself spares
// Chromium copying every frame into its blob store and back.
const BYTES = {u8x3: 3, d24i8: 4, f32x3: 12};
function payload(header, images, extra) {
  header.blocks = [];
  let size = 0;
  for (const [name, px, type] of images) {
    const bytes = (px.length / 4) * BYTES[type];
    header.blocks.push({name, type, bytes});
    size += bytes;
  }
  for (const [name, b] of extra) {
    header.blocks.push({name, type: "bits", bytes: b.data.length, w: b.w, h: b.h, ids: b.ids,
                         x8: b.x8, y: b.y, cols: b.cols, rows: b.rows});
    size += b.data.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const n = json.length + ((4 - ((8 + json.length) % 4)) % 4);
  const out = new Uint8Array(8 + n + size);
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint32(4, n, true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + n);
  let j = 8 + n;
  for (const [, px, type] of images) {
    if (type === "f32x3") {
      // Through an aligned copy when the block's offset is not a multiple of 4, which a
      // Float32Array view on it must be.
      const aligned = j % 4 === 0;
      const f = aligned ? new Float32Array(out.buffer, j, (px.length / 4) * 3)
        : new Float32Array((px.length / 4) * 3);
      for (let i = 0, k = 0; i < px.length; i += 4, k += 3) {
        f[k] = px[i]; f[k + 1] = px[i + 1]; f[k + 2] = px[i + 2];
      }
      if (!aligned) out.set(new Uint8Array(f.buffer), j);
      j += f.byteLength;
    } else if (type === "d24i8") {
      out.set(px, j);
      j += px.length;
    } else {
      j = rgb(px, out, j);
    }
  }
  for (const [, b] of extra) { out.set(b.data, j); j += b.data.length; }
  return {size: out.length, type: "application/x-raycollect-frame", bytes: out,
          arrayBuffer: () => Promise.resolve(out.buffer)};
}

// The payload POSTed (with the page's own fetch, which loads.js does not count), and the
// small answer that names it in its place.
function upload(p, w, h) {
  const key = `${PAGE_NONCE}-${uploads++}`;
  fetch0.call(window, `/rc-frame/${key}?t=${encodeURIComponent(UPLOAD)}`, {
    method: "POST", body: p.bytes, headers: {"Content-Type": "application/octet-stream"},
  }).catch(() => {}); // the worker's wait for it times out, and the grab is retried
  return payload({w, h, upload: key}, [], []);
}

// RGBA pixels into `out` at j as R, G, B; returns where they end. Four pixels at a time as
// three 32-bit words where j is a multiple of 4 (three times faster than byte by byte).
function rgb(px, out, j) {
  let i = 0;
  if (j % 4 === 0) {
    const s = new Uint32Array(px.buffer, px.byteOffset, px.length >> 2);
    const o = new Uint32Array(out.buffer, j, (s.length >> 2) * 3);
    for (let k = 0; i + 3 < s.length; i += 4, k += 3) {
      const a = s[i] & 0xFFFFFF, b = s[i + 1] & 0xFFFFFF, c = s[i + 2] & 0xFFFFFF, d = s[i + 3];
      o[k] = a | (b << 24);
      o[k + 1] = (b >>> 8) | (c << 16);
      o[k + 2] = (c >>> 16) | (d << 8);
    }
    j += i * 3;
    i *= 4;
  }
  for (; i < px.length; i += 4, j += 3) {
    out[j] = px[i]; out[j + 1] = px[i + 1]; out[j + 2] = px[i + 2];
  }
  return j;
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
  const buffers = []; // [name, pixels, type] of the image passes
  let extra = []; // [name, packed block] of the amodal pass
  try {
    const t0 = performance.now();
    r.setRenderTarget(null);
    // What the client just drew: the frame (as the client read it, when it did).
    const st = instrument(r);
    const read = st.canvasRead;
    st.canvasRead = null;
    buffers.push(["rgb", read && read.serial === st.serial && read.w === w && read.h === h
      ? read.px : readRGBA(r, w, h), "u8x3"]);
    if (last && PASSES.length && !marker) {
      const frame = mrtFrames.get(r);
      const mrt = frame && frame.w === w && frame.h === h;
      header.page = {mode: mrt ? "mrt" : "separate"};
      if (!mrt && fallbacks.get(r)) header.page.why = fallbacks.get(r);
      if (mrt) {
        buffers.push(...readMRT(r, frame));
      } else {
        const surface = IMAGE_PASSES.filter((p) => FLOAT_PASSES.has(p));
        if (surface.length) {
          throw new Error(`${surface.join(" and ")} are drawn only in the one render, which ` +
                          `this scene cannot take: ${fallbacks.get(r) || "no render of its own"}`);
        }
        for (const pass of IMAGE_PASSES) {
          buffers.push([pass, renderPass(r, last.scene, last.camera, pass, w, h), "u8x3"]);
        }
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
    const p = payload(header, buffers, extra);
    if (UPLOAD && !marker && !header.error && p.size >= UPLOAD_MIN_BYTES) {
      return Promise.resolve(upload(p, w, h));
    }
    return Promise.resolve(p);
  } catch (e) {  // an answer that says so, never a grab left unanswered
    header.error = `capture failed: ${errorText(e)}`;
    return Promise.resolve(payload(header, [], []));
  }
};
