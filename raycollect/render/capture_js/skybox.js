// Skyboxes (raycollect/scene.py `skybox`): a group whose userData.rcSkybox lists six image
// URLs makes them the scene's background, a cube texture, before a view renders.
//
// Not the client's Environment element: the client hands every element its children, so
// drei's Environment takes its portal form (a cube camera rendering those children in the
// page's main WebGL context), and a view renders in a context of its own, where that
// render-target texture does not exist: the background drew black. A texture of images
// uploads into any context. The page has no three.js module of its own, so the texture is
// a Texture (the class of a view's render-target texture) made a cube texture as three.js's
// CubeTexture makes itself one: an array of six images, cube reflection mapping, no flip.
const CUBE_REFLECTION_MAPPING = 301; // three.js CubeReflectionMapping
const SRGB = "srgb"; // three.js SRGBColorSpace: the images' colours are sRGB
let TextureClass = null;
let sky = {key: null, images: null, texture: null, previous: null};

function skyboxFaces(scene) {
  let faces = null;
  walk(scene, (obj) => { if (obj.userData && obj.userData.rcSkybox) faces = obj.userData.rcSkybox; });
  return faces;
}

function loaded(img) { return img.complete && img.naturalWidth > 0; }

// Before a view renders `scene` into `target`: start loading a new skybox's images, make
// the texture once they are all there, and keep it the scene's background; a scene whose
// skybox is gone gets its previous background back.
function applySkybox(scene, target) {
  if (!TextureClass && target && target.texture) TextureClass = target.texture.constructor;
  const faces = skyboxFaces(scene);
  const key = faces ? faces.join("\n") : null;
  if (key !== sky.key) {
    if (sky.texture) {
      if (scene.background === sky.texture) scene.background = sky.previous;
      sky.texture.dispose();
    }
    sky = {key, images: null, texture: null, previous: null};
    if (faces) {
      sky.images = faces.map((url) => {
        const img = new Image();
        img.src = url; // loads.js counts it in flight until it has loaded or failed
        return img;
      });
    }
  }
  if (faces && !sky.texture && TextureClass && sky.images.every(loaded)) {
    const t = new TextureClass();
    t.image = sky.images;
    t.isCubeTexture = true;
    t.mapping = CUBE_REFLECTION_MAPPING;
    t.flipY = false;
    t.colorSpace = SRGB;
    t.needsUpdate = true;
    sky.previous = scene.background;
    sky.texture = t;
  }
  if (sky.texture && scene.background !== sky.texture) scene.background = sky.texture;
}

// Whether the scene shows the skybox of these faces (loads.js reports it loaded then).
function skyboxShown(scene, faces) {
  return sky.texture !== null && sky.key === faces.join("\n") && scene.background === sky.texture;
}
