// Amodal silhouettes: every labelled mesh drawn again, each id into a channel of its own
// (amodal_gl.js says how), packed 8 pixels a byte, and read back.
function drawSilhouette(gl, s, prog, obj, camera) {
  const geo = obj.geometry;
  const pos = geo && geo.attributes && geo.attributes.position;
  if (!pos || pos.count === 0 || pos.itemSize < 3) return;
  gl.bindBuffer(gl.ARRAY_BUFFER, glBuffer(gl, s, pos, gl.ARRAY_BUFFER));
  const inter = pos.isInterleavedBufferAttribute;
  const bytes = pos.array ? pos.array.BYTES_PER_ELEMENT : (inter ? pos.data.array.BYTES_PER_ELEMENT : 4);
  const type = {1: gl.BYTE, 2: gl.SHORT, 4: gl.FLOAT}[bytes] || gl.FLOAT;
  gl.enableVertexAttribArray(prog.position);
  gl.vertexAttribPointer(prog.position, 3, type, !!pos.normalized,
                         inter ? pos.data.stride * bytes : 0, inter ? pos.offset * bytes : 0);
  const mv = obj.modelViewMatrix.clone().multiplyMatrices(camera.matrixWorldInverse, obj.matrixWorld);
  gl.uniformMatrix4fv(prog.uMV, false, new Float32Array(mv.elements));
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

// The part of a w x h canvas that the meshes of `ids` can cover, from their geometries'
// bounding boxes projected as they are drawn (a conservative box, a pixel wider each side):
// {x0, y0, x1, y1}, bottom-up as GL counts rows, x0 and x1 on whole bytes of the packing
// (x1 may be w). The whole canvas when a box reaches behind the camera; null when nothing
// is drawn. Only this part is cleared, drawn, packed and read back: an object on BOP's
// threefold canvas covers a few percent of it.
function region(meshes, ids, camera, proj, w, h) {
  const want = new Set(ids);
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const [obj, id] of meshes) {
    if (!want.has(id)) continue;
    const geo = obj.geometry;
    const pos = geo && geo.attributes && geo.attributes.position;
    if (!pos || pos.count === 0) continue;
    if (!geo.boundingBox) geo.computeBoundingBox();
    const {min, max} = geo.boundingBox;
    if (!(min.x <= max.x && min.y <= max.y && min.z <= max.z)) continue; // empty
    // P * V * M, column-major (three.js's Matrix4 without needing its constructor here)
    const e = proj.clone().multiply(camera.matrixWorldInverse).multiply(obj.matrixWorld).elements;
    for (let c = 0; c < 8; c++) {
      const x = c & 1 ? max.x : min.x, y = c & 2 ? max.y : min.y, z = c & 4 ? max.z : min.z;
      const cw = e[3] * x + e[7] * y + e[11] * z + e[15];
      if (!(cw > 1e-9)) return {x0: 0, y0: 0, x1: w, y1: h};
      const cx = (e[0] * x + e[4] * y + e[8] * z + e[12]) / cw;
      const cy = (e[1] * x + e[5] * y + e[9] * z + e[13]) / cw;
      const px = (cx * 0.5 + 0.5) * w, py = (cy * 0.5 + 0.5) * h;
      x0 = Math.min(x0, px); x1 = Math.max(x1, px); y0 = Math.min(y0, py); y1 = Math.max(y1, py);
    }
  }
  if (x0 === Infinity) return null;
  x0 = Math.max(0, Math.floor(x0) - 1); y0 = Math.max(0, Math.floor(y0) - 1);
  x1 = Math.min(w, Math.ceil(x1) + 1); y1 = Math.min(h, Math.ceil(y1) + 1);
  if (x0 >= x1 || y0 >= y1) return null;
  return {x0: x0 - (x0 % 8), y0, x1: Math.min(w, Math.ceil(x1 / 8) * 8), y1};
}

// One silhouette render of up to SLOTS ids and its packing: {ids, data, w, h, x8, y, cols,
// rows} where data holds ceil(n / 4) planes of a part of the canvas (region above), each
// `rows` rows (bottom-up, from GL row y) of `cols` RGBA pixels (from byte column x8):
// channel c of plane a holds id a * 4 + c, bit b of byte x the pixel x * 8 + b.
function silhouetteRender(gl, s, meshes, ids, camera, w, h, scale) {
  const n = Math.ceil(ids.length / 4);
  const p = camera.projectionMatrix.clone();
  const e = p.elements;
  for (const i of [0, 4, 8, 12, 1, 5, 9, 13]) e[i] /= scale; // x and y rows: a wider view
  const part = region(meshes, ids, camera, p, w, h);
  if (part === null) return {ids, data: new Uint8Array(0), w, h, x8: 0, y: 0, cols: 0, rows: 0};
  const {x0, y0, x1, y1} = part;
  const prog = programsFor(gl, s, n);
  const slot = new Map(ids.map((id, i) => [id, i]));
  const draw = target(gl, s, "draw", w, h, n);
  gl.enable(gl.SCISSOR_TEST);
  gl.scissor(x0, y0, x1 - x0, y1 - y0);
  gl.viewport(0, 0, w, h);
  gl.disable(gl.DEPTH_TEST);
  gl.disable(gl.STENCIL_TEST);
  gl.depthMask(false);
  gl.colorMask(true, true, true, true);
  gl.blendEquation(gl.FUNC_ADD);
  gl.blendFunc(gl.ONE, gl.ONE);
  gl.useProgram(prog.draw);
  gl.bindVertexArray(s.vao);
  gl.uniformMatrix4fv(prog.uP, false, new Float32Array(e));
  for (let a = 0; a < n; a++) { // a plane at a time, 4 ids a plane
    gl.bindFramebuffer(gl.FRAMEBUFFER, draw.alone[a]);
    gl.drawBuffers([A0]);
    gl.disable(gl.BLEND);
    gl.clearBufferfv(gl.COLOR, 0, [0, 0, 0, 0]);
    gl.enable(gl.BLEND);
    for (const [obj, id] of meshes) {
      const k = slot.get(id);
      if (k === undefined || (k >> 2) !== a) continue;
      gl.uniform1i(prog.uChannel, k & 3);
      drawSilhouette(gl, s, prog, obj, camera);
    }
  }
  gl.disable(gl.BLEND);
  gl.disable(gl.CULL_FACE);
  // Pack: 8 pixels of each channel into a byte, over the region's bytes only.
  const x8 = x0 / 8, cols = Math.ceil(x1 / 8) - x8, rows = y1 - y0;
  const w8 = Math.ceil(w / 8);
  bindTarget(gl, s, "pack", w8, h, n);
  gl.scissor(x8, y0, cols, rows);
  gl.viewport(x8, y0, cols, rows); // gl_FragCoord stays the canvas's: the shader is unchanged
  gl.useProgram(prog.pack);
  gl.bindVertexArray(s.emptyVao);
  gl.uniform1i(prog.uW, w);
  for (const i of upTo(n)) {
    gl.activeTexture(gl.TEXTURE0 + i);
    gl.bindTexture(gl.TEXTURE_2D, draw.textures[i]);
    gl.uniform1i(prog.samplers[i], i);
  }
  gl.drawArrays(gl.TRIANGLES, 0, 3);
  gl.disable(gl.SCISSOR_TEST);
  const size = cols * rows * 4;
  const data = new Uint8Array(n * size);
  for (let i = 0; i < n; i++) {
    gl.readBuffer(A0 + i);
    gl.readPixels(x8, y0, cols, rows, gl.RGBA, gl.UNSIGNED_BYTE, data.subarray(i * size, (i + 1) * size));
  }
  return {ids, data, w, h, x8, y: y0, cols, rows};
}

// The ids of a packed render whose silhouette reaches the image's outermost pixels.
function touchingBorder(block) {
  const {ids, data, w, h, x8, y, cols, rows} = block;
  if (!rows || !cols) return [];
  const plane = cols * rows * 4;
  const lastBit = 1 << ((w - 1) % 8);
  const bottom = y === 0, top = y + rows === h;
  const left = x8 === 0, right = x8 + cols === Math.ceil(w / 8);
  return ids.filter((id, j) => {
    const base = Math.floor(j / 4) * plane + (j % 4);
    const at = (c, r) => data[base + (r * cols + c) * 4];
    for (let c = 0; c < cols; c++) if ((bottom && at(c, 0)) || (top && at(c, rows - 1))) return true;
    for (let r = 0; r < rows; r++) if ((left && (at(0, r) & 1)) || (right && (at(cols - 1, r) & lastBit))) return true;
    return false;
  });
}

function amodal(r, scene, camera, w, h) {
  const gl = r.getContext();
  const s = silhouetteState(gl);
  const meshes = [];
  const seen = new Set();
  drawn(scene, (obj, id) => {
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
