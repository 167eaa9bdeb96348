// The 3D panel: the selected object's points over the scene's points (dimmed), orbit with the mouse.
// three.js 0.170.0, vendored under /static/vendor/three (see its VERSION file).
import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import { PLYLoader } from "three/addons/loaders/PLYLoader.js";

export class ThreePanel {
  constructor(container, sceneToggle) {
    this.container = container;
    this.renderer = new THREE.WebGLRenderer({ antialias: true }); // throws without WebGL
    this.renderer.setPixelRatio(window.devicePixelRatio);
    this.renderer.setSize(container.clientWidth, container.clientHeight);
    container.appendChild(this.renderer.domElement);
    this.scene = new THREE.Scene();
    this.camera = new THREE.PerspectiveCamera(50, container.clientWidth / container.clientHeight, 0.001, 1000);
    this.camera.up.set(0, -1, 0); // OpenCV-style worlds usually have y down
    this.controls = new OrbitControls(this.camera, this.renderer.domElement);
    this.loader = new PLYLoader();
    this.sceneCloud = null;
    this.objectCloud = null;
    this.requested = 0;
    sceneToggle.addEventListener("change", () => {
      if (this.sceneCloud) this.sceneCloud.visible = sceneToggle.checked;
    });
    this.renderer.setAnimationLoop(() => {
      this.controls.update();
      this.renderer.render(this.scene, this.camera);
    });
  }

  async load(url) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    return this.loader.parse(await response.arrayBuffer());
  }

  async loadScene() {
    const geometry = await this.load("/api/scene/points.ply");
    const material = new THREE.PointsMaterial({ size: 2, sizeAttenuation: false, vertexColors: true,
      transparent: true, opacity: 0.25 });
    this.sceneCloud = new THREE.Points(geometry, material);
    this.scene.add(this.sceneCloud);
    geometry.computeBoundingSphere();
    const sphere = geometry.boundingSphere;
    this.camera.near = sphere.radius / 100;
    this.camera.far = sphere.radius * 20;
    this.controls.target.copy(sphere.center);
    this.camera.position.copy(sphere.center).add(new THREE.Vector3(0, -0.6, -1.2).multiplyScalar(sphere.radius));
    this.camera.updateProjectionMatrix();
  }

  lookFrom(record) {
    // start where a view's camera stands (OpenCV axes: x right, y down, z forward), orbiting what it sees
    if (!record?.world_from_cam) return;
    const m = record.world_from_cam;
    const center = new THREE.Vector3(m[0][3], m[1][3], m[2][3]);
    const forward = new THREE.Vector3(m[0][2], m[1][2], m[2][2]);
    const down = new THREE.Vector3(m[0][1], m[1][1], m[2][1]);
    const distance = record.median_depth || this.camera.far / 20;
    this.camera.up.copy(down.negate());
    this.camera.position.copy(center);
    // OrbitControls takes "up" from the camera when it is made, so make new ones
    this.controls.dispose();
    this.controls = new OrbitControls(this.camera, this.renderer.domElement);
    this.controls.target.copy(center.clone().add(forward.multiplyScalar(distance)));
    this.controls.update();
  }

  async showObject(id, color) {
    const ticket = ++this.requested;
    if (this.objectCloud) {
      this.scene.remove(this.objectCloud);
      this.objectCloud.geometry.dispose();
      this.objectCloud = null;
    }
    if (id === null || id === undefined) return;
    const geometry = await this.load(`/api/objects/${id}/points.ply`);
    if (ticket !== this.requested) return geometry.dispose();
    const material = new THREE.PointsMaterial({ size: 4, sizeAttenuation: false, color: color || "#ffffff" });
    this.objectCloud = new THREE.Points(geometry, material);
    this.scene.add(this.objectCloud);
  }
}
