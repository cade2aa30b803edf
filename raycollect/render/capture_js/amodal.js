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

// One silhouette render of up to SLOTS ids and its packing: {ids, data} where data holds
// ceil(n / 4) planes, each H rows (bottom-up) of ceil(W / 8) RGBA pixels: channel c of
// plane a holds id a * 4 + c, bit b of byte x the pixel x * 8 + b.
function silhouetteRender(gl, s, meshes, ids, camera, w, h, scale) {
  const n = Math.ceil(ids.length / 4);
  const prog = programsFor(gl, s, n);
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
  gl.useProgram(prog.draw);
  gl.bindVertexArray(s.vao);
  const p = camera.projectionMatrix.elements.slice();
  for (const i of [0, 4, 8, 12, 1, 5, 9, 13]) p[i] /= scale; // x and y rows: a wider view
  gl.uniformMatrix4fv(prog.uP, false, new Float32Array(p));
  for (const [obj, id] of meshes) {
    if (!slot.has(id)) continue;
    gl.uniform1i(prog.uSlot, slot.get(id));
    drawSilhouette(gl, s, prog, obj, camera);
  }
  gl.disable(gl.BLEND);
  gl.disable(gl.CULL_FACE);
  // Pack: 8 pixels of each channel into a byte.
  const w8 = Math.ceil(w / 8);
  bindTarget(gl, s, "pack", w8, h, n);
  gl.useProgram(prog.pack);
  gl.bindVertexArray(s.emptyVao);
  gl.uniform1i(prog.uW, w);
  for (const i of upTo(n)) {
    gl.activeTexture(gl.TEXTURE0 + i);
    gl.bindTexture(gl.TEXTURE_2D, draw.textures[i]);
    gl.uniform1i(prog.samplers[i], i);
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
